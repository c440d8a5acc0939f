"""When recurring schedules fire: cron expressions evaluated in an IANA time zone, fixed intervals, and what a
scheduler that was away does about the fires it missed. Pure (no Redis, no Flask): the web side validates with it,
the workers' scheduler loop fires by it, tests/unit/test_cron.py pins it down.

Cron: 5 fields `minute hour day-of-month month day-of-week`, or 6 with `second` first; `*`, lists, ranges, steps
(`*/15`, `1-30/5`), month and weekday names, 0 or 7 for Sunday, and the macros @yearly @monthly @weekly @daily
@hourly. When both day fields are restricted a day matches either (Vixie cron's rule).

Across DST changes it behaves like Vixie cron and cronie, which tell "fixed-time" jobs (neither the minute nor the
hour field starts with `*`: `30 2 * * *`) from "wildcard" ones (`0 * * * *`, `*/10 * * * *`):
- a wall-clock time skipped when the clocks go forward (02:30 in Europe/Berlin on 2026-03-29) fires a fixed-time job
  once, at the first instant after the gap (03:00 CEST); a wildcard job just has no fire there (the hourly job runs
  at 01:00 CET, then 03:00 CEST: every real hour, none twice);
- a wall-clock time that happens twice when the clocks go back (02:30 on 2026-10-25) fires a fixed-time job once,
  the first time (02:30 CEST); a wildcard job fires both times (02:00 CEST and 02:00 CET are two real hours).
Intervals are elapsed seconds from an anchor, so no clock change moves them.
"""

from __future__ import annotations

import bisect
import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# (name, lowest, highest, names for lowest.. on)
FIELDS = [("second", 0, 59, []), ("minute", 0, 59, []), ("hour", 0, 23, []), ("day of month", 1, 31, []),
          ("month", 1, 12, MONTHS), ("day of week", 0, 7, WEEKDAYS)]
CHUNK = 6 * 3600  # the search steps through time at most this far at once: no zone changes its offset twice in it
EPOCH = datetime(1970, 1, 1)
SEARCH_YEARS = 9  # a matching day comes within this (Feb 29 on a leap year, across a non-leap century year)
CATCH_UP_STEPS = 100  # fires counted one by one when the scheduler was away; beyond, the latest is looked for


class CronError(ValueError):
    """An expression, zone or interval that cannot be a schedule; the message says why (shown to the client)."""


class Timetable(Protocol):
    def next_after(self, t: int) -> int:
        """The first fire time (unix seconds) strictly after t."""
        ...


def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name (CronError if unknown)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)") from None


def _number(text: str, low: int, names: list[str], field: str) -> int:
    if text.lower() in names:
        return names.index(text.lower()) + low
    if not text.isdigit():
        raise CronError(f"{field}: {text!r} is not a number" + (f" or a name ({', '.join(names)})" if names else ""))
    return int(text)


def _field(text: str, field: str, low: int, high: int, names: list[str]) -> tuple[int, ...]:
    """The sorted values of one field."""
    values: set[int] = set()
    for part in text.split(","):
        span, slash, step_text = part.partition("/")
        if slash and not step_text.isdigit() or slash and int(step_text) == 0:
            raise CronError(f"{field}: step {step_text!r} is not a positive number")
        step = int(step_text) if slash else 1
        if span == "*":
            first, last = low, high
        else:
            start, dash, end = span.partition("-")
            first = _number(start, low, names, field)
            last = _number(end, low, names, field) if dash else (high if slash else first)
        if not low <= first <= high or not low <= last <= high:
            raise CronError(f"{field}: {part!r} is outside {low}-{high}")
        if first > last:
            raise CronError(f"{field}: range {part!r} goes backwards")
        values.update(range(first, last + 1, step))
    return tuple(sorted(values))


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression evaluated in a time zone; next_after() is the whole contract."""

    expression: str
    tz: ZoneInfo
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day of month is *
    any_weekday: bool  # day of week is *
    fixed: bool  # neither the minute nor the hour field starts with * (see the module's DST rules)

    @classmethod
    def parse(cls, expression: str, tz: str = "UTC") -> Cron:
        text = MACROS.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise CronError(f"expected 5 fields (minute hour day month weekday) or 6 (second first), got {len(parts)}")
        seconds, minutes, hours, days, months, weekdays = (
            _field(part, name, low, high, names) for part, (name, low, high, names) in zip(parts, FIELDS, strict=True))
        cron = cls(expression, zone(tz), seconds, minutes, hours, days, months, frozenset(d % 7 for d in weekdays),
                   any_day=parts[3].startswith("*"), any_weekday=parts[5].startswith("*"),
                   fixed=not parts[1].startswith("*") and not parts[2].startswith("*"))
        if cron.any_weekday and not any(day <= _month_days(2000, month) for month in cron.months for day in cron.days):
            raise CronError(f"never fires: no month among {list(cron.months)} has day {list(cron.days)}")
        return cron

    def day_matches(self, day: date) -> bool:
        by_month = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:  # one of them is *: the other decides (both *: every day)
            return by_month and by_weekday
        return by_month or by_weekday

    def next_wall(self, wall: datetime) -> datetime:
        """The first wall-clock time at or after `wall` (naive, whole seconds) that the fields match."""
        day, clock = wall.date(), (wall.hour, wall.minute, wall.second)
        last = date(min(wall.year + SEARCH_YEARS, 9999), 12, 31)
        while day <= last:
            if day.month not in self.months:
                later = [m for m in self.months if m > day.month]
                day = date(day.year, later[0], 1) if later else date(day.year + 1, self.months[0], 1)
                clock = (0, 0, 0)
                continue
            if self.day_matches(day):
                found = self._time_at_or_after(clock)
                if found:
                    return datetime(day.year, day.month, day.day, *found)
            day, clock = day + timedelta(days=1), (0, 0, 0)
        raise CronError(f"{self.expression!r} does not fire within {SEARCH_YEARS} years")

    def _time_at_or_after(self, clock: tuple[int, int, int]) -> tuple[int, int, int] | None:
        """The first matching (hour, minute, second) at or after clock on a matching day."""
        hour, minute, second = clock
        for h in self.hours[bisect.bisect_left(self.hours, hour):]:
            start_minute = minute if h == hour else 0
            for m in self.minutes[bisect.bisect_left(self.minutes, start_minute):]:
                start_second = second if (h, m) == (hour, minute) else 0
                at = bisect.bisect_left(self.seconds, start_second)
                if at < len(self.seconds):
                    return h, m, self.seconds[at]
        return None

    def next_after(self, t: int) -> int:
        """Walk spans of constant UTC offset: the first matching wall time in each, with the DST rules."""
        t += 1
        while True:
            offset = _offset(self.tz, t)
            instant = _instant(self.next_wall(_wall(t, offset)), offset)
            change = _next_change(self.tz, t, instant, offset)
            if change is None:
                if self.fixed and datetime.fromtimestamp(instant, self.tz).fold == 1:
                    t = instant + 1  # the second time this wall-clock time happens: a fixed-time job ran the first
                    continue
                return instant
            if self.fixed and _offset(self.tz, change) > offset:  # clocks forward: the skipped times fire at the end
                if self.next_wall(_wall(change, offset)) < _wall(change, _offset(self.tz, change)):
                    return change
            t = change


def _month_days(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1] if month != 2 else 29


def _offset(tz: ZoneInfo, t: int) -> int:
    """The zone's UTC offset at instant t, in seconds."""
    delta = datetime.fromtimestamp(t, tz).utcoffset()
    return int(delta.total_seconds()) if delta else 0


def _next_change(tz: ZoneInfo, start: int, until: int, offset: int) -> int | None:
    """The first instant in (start, until] whose UTC offset is not `offset`, probed CHUNK by CHUNK; None if none."""
    low = start
    while low < until:
        high = min(low + CHUNK, until)
        if _offset(tz, high) != offset:
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(tz, middle) == offset:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None


def _wall(t: int, offset: int) -> datetime:
    return EPOCH + timedelta(seconds=t + offset)


def _instant(wall: datetime, offset: int) -> int:
    return int((wall - EPOCH).total_seconds()) - offset


@dataclass(frozen=True)
class Every:
    """Every `seconds` of elapsed time, counted from `anchor` (unix seconds): DST and time zones play no part."""

    seconds: int
    anchor: int

    def next_after(self, t: int) -> int:
        if t < self.anchor:
            return self.anchor
        return self.anchor + ((t - self.anchor) // self.seconds + 1) * self.seconds


@dataclass(frozen=True)
class Due:
    """What a scheduler does with a schedule whose next_run has come: fire (at this time) or not, what it missed."""

    fire: int | None  # the fire time to run now (None: nothing runs)
    missed: int  # fire times not run (at least this many: counting stops at CATCH_UP_STEPS)
    latest: int  # the latest fire time at or before now
    next_run: int  # the first fire time after now


def due(timetable: Timetable, next_run: int, now: float, grace: float, catch_up: bool) -> Due:
    """next_run <= now: at most one fire, the latest fire time due; it runs if within grace of its time, or (after
    downtime) if the schedule catches up; every earlier one is missed, never replayed."""
    latest, missed = next_run, 0
    while (following := timetable.next_after(latest)) <= now:
        latest, missed = following, missed + 1
        if missed == CATCH_UP_STEPS:
            latest = _latest(timetable, latest, int(now))
            break
    fire = latest if now - latest <= grace or catch_up else None
    return Due(fire, missed + (fire is None), latest, timetable.next_after(max(latest, int(now))))


def _latest(timetable: Timetable, known: int, now: int) -> int:
    """The last fire time in [known, now], looked for in windows before now that grow eightfold."""
    window = 64
    while True:
        start = max(known, now - window)
        latest, t = known, start - 1
        while (t := timetable.next_after(t)) <= now:
            latest = t
        if latest > known or start == known:
            return latest
        window *= 8


def utc(t: float) -> str:
    """An instant as ISO 8601 in UTC, for messages."""
    return datetime.fromtimestamp(t, UTC).isoformat()

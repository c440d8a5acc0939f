"""The schedule evaluator (wsexec.cron): fields, DST in a zone whose clocks jump, intervals, a late scheduler."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from wsexec.cron import Cron, CronError, Every, due, zone

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def fires(expression: str, start: str, end: str, tz: str = "Europe/Berlin") -> list[str]:
    """The fire times in (start, end), as Berlin wall-clock times with their offsets."""
    cron, t, found = Cron.parse(expression, tz), at(start), []
    while (t := cron.next_after(t)) < at(end):
        found.append(datetime.fromtimestamp(t, BERLIN).isoformat())
    return found


def test_a_daily_0230_job_runs_once_on_both_dst_days() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 never shows: it runs at the end of the gap
    assert fires("30 2 * * *", "2026-03-28T00:00+01:00", "2026-03-31T00:00+02:00") == [
        "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30 shows twice: it runs the first time only
    assert fires("30 2 * * *", "2026-10-24T00:00+02:00", "2026-10-27T00:00+01:00") == [
        "2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]


def test_an_hourly_job_runs_every_real_hour_across_both_changes() -> None:
    spring = fires("0 * * * *", "2026-03-29T00:30+01:00", "2026-03-29T04:30+02:00")
    assert spring == ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]
    autumn = fires("0 * * * *", "2026-10-25T00:30+02:00", "2026-10-25T03:30+01:00")
    assert autumn == ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00",
                      "2026-10-25T03:00:00+01:00"]
    # a whole day: 23 real hours in March, 25 in October; the midnight at the start is not "after" it
    assert len(fires("0 * * * *", "2026-03-29T00:00+01:00", "2026-03-30T00:00+02:00")) == 22
    assert len(fires("0 * * * *", "2026-10-25T00:00+02:00", "2026-10-26T00:00+01:00")) == 24


def test_wildcard_minutes_in_the_repeated_hour_run_in_both_and_seconds_keep_their_pace() -> None:
    assert fires("*/30 2 * * *", "2026-10-25T00:00+02:00", "2026-10-25T04:00+01:00") == [
        "2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00"]
    assert fires("*/20 * * * * *", "2026-10-25T02:59:00+02:00", "2026-10-25T02:00:30+01:00") == [
        "2026-10-25T02:59:20+02:00", "2026-10-25T02:59:40+02:00", "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:00:20+01:00"]
    every_second = fires("* * * * * *", "2026-03-29T01:59:58+01:00", "2026-03-29T03:00:02+02:00")
    assert every_second == ["2026-03-29T01:59:59+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:00:01+02:00"]


def test_times_in_the_gap_fire_once_at_its_end() -> None:
    # 02:00 and 02:30 are both skipped, 03:00 is the end of the gap: one fire, not three
    assert fires("0,30 2,3 29 3 *", "2026-03-29T00:00+01:00", "2026-03-29T04:00+02:00") == [
        "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]


@pytest.mark.parametrize(("expression", "start", "expected"), [
    ("0 9 * * mon-fri", "2026-12-04T10:00+01:00", "2026-12-07T09:00:00+01:00"),  # Friday after 9: Monday
    ("0 0 29 2 *", "2026-01-01T00:00+01:00", "2028-02-29T00:00:00+01:00"),
    ("0 12 1 * 0", "2026-12-02T00:00+01:00", "2026-12-06T12:00:00+01:00"),  # both days restricted: either (Sunday)
    ("0 0 * * 7", "2026-12-02T00:00+01:00", "2026-12-06T00:00:00+01:00"),  # 7 is Sunday too
    ("15 10 * jan,JUL *", "2026-02-01T00:00+01:00", "2026-07-01T10:15:00+02:00"),
    ("@monthly", "2026-12-02T00:00+01:00", "2027-01-01T00:00:00+01:00"),
    ("5-10/5 0 * * *", "2026-12-02T00:06+01:00", "2026-12-02T00:10:00+01:00"),
    ("30 0/12 * * *", "2026-12-02T01:00+01:00", "2026-12-02T12:30:00+01:00"),
])
def test_fields(expression: str, start: str, expected: str) -> None:
    assert fires(expression, start, "2030-01-01T00:00+01:00")[0] == expected


def test_another_zone() -> None:
    assert fires("0 2 * * *", "2026-12-02T00:00+00:00", "2026-12-03T00:00+00:00", "America/New_York") == [
        "2026-12-02T08:00:00+01:00"]


@pytest.mark.parametrize(("expression", "message"), [
    ("* * * *", "expected 5 fields"),
    ("60 * * * *", "outside 0-59"),
    ("* 24 * * *", "outside 0-23"),
    ("* * 0 * *", "outside 1-31"),
    ("* * * 13 *", "outside 1-12"),
    ("* * * * 8", "outside 0-7"),
    ("*/0 * * * *", "step"),
    ("5-1 * * * *", "backwards"),
    ("x * * * *", "not a number"),
    ("0 0 31 4 *", "never fires"),
    ("0 0 30 2 *", "never fires"),
    ("@reboot", "expected 5 fields"),
    ("", "expected 5 fields"),
])
def test_bad_expressions(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        Cron.parse(expression)


def test_bad_zone() -> None:
    for name in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(CronError, match="unknown time zone"):
            zone(name)


def test_an_interval_counts_elapsed_seconds_from_its_anchor() -> None:
    every = Every(3600, at("2026-03-29T00:30+01:00"))
    t, found = every.anchor, []
    for _ in range(3):
        t = every.next_after(t)
        found.append(datetime.fromtimestamp(t, BERLIN).isoformat())
    assert found == ["2026-03-29T01:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-29T04:30:00+02:00"]
    assert every.next_after(every.anchor - 100) == every.anchor


def test_on_time_fires_run_and_a_late_scheduler_does_not_replay() -> None:
    every = Every(10, 1000)
    assert due(every, 1010, 1010.4, grace=30, catch_up=False) == due(every, 1010, 1010.4, 30, True)
    on_time = due(every, 1010, 1010.4, grace=30, catch_up=False)
    assert (on_time.fire, on_time.missed, on_time.next_run) == (1010, 0, 1020)
    # a scheduler 2 s behind an every-10 s schedule still runs that fire; two fires due at once coalesce to the latest
    coalesced = due(every, 1010, 1021, grace=30, catch_up=False)
    assert (coalesced.fire, coalesced.missed, coalesced.next_run) == (1020, 1, 1030)
    # back after an hour away from an every-minute schedule, 30 s after the latest fire (grace 10 s): nothing runs
    # unless the schedule catches up, and then only the latest fire
    minutely = Every(60, 0)
    missed = due(minutely, 60, 3630, grace=10, catch_up=False)
    assert (missed.fire, missed.missed, missed.latest, missed.next_run) == (None, 60, 3600, 3660)
    caught = due(minutely, 60, 3630, grace=10, catch_up=True)
    assert (caught.fire, caught.missed, caught.next_run) == (3600, 59, 3660)

def test_a_long_absence_finds_the_latest_fire_without_walking_every_one() -> None:
    cron = Cron.parse("* * * * * *")  # every second, a year away: 31 million fires
    start, now = at("2026-01-01T00:00+00:00"), at("2027-01-01T00:00+00:00") + 0.5
    result = due(cron, start, now, grace=30, catch_up=True)
    assert (result.fire, result.next_run) == (int(now), int(now) + 1)
    assert result.missed >= 100  # counted up to CATCH_UP_STEPS, then "at least"

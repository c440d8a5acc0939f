"""`wsexec events`: tail task events as they happen, going on from the last event seen when the stream breaks (the
server keeps a window of them, so a reconnect loses nothing still kept)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from wsexec.cli import outcome, render
from wsexec.cli.client import ApiError, Event, StreamBroken
from wsexec.cli.commands import State, cli, pass_state
from wsexec.cli.watch import RECONNECT_PAUSE


@cli.command()
@click.option("--batch", help="only this fan-out's tasks")
@click.option("-t", "--tag", help="only tasks with this tag")
@click.option("-i", "--instance", type=int, help="only this instance's tasks")
@click.option("--timeout", type=click.IntRange(min=0), help="stop after this many seconds (0: only the kept events)")
@click.option("--after", metavar="EVENT_ID", help="resume after this event id (default: from now on)")
@click.option("--all", "from_oldest", is_flag=True, help="from the oldest event the server keeps")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line: event, id, data")
@pass_state
def events(state: State, batch: str | None, tag: str | None, instance: int | None, timeout: int | None,
           after: str | None, from_oldest: bool, as_json: bool) -> None:
    """Tail task events (created, started, finished) as they happen; Ctrl-C stops."""
    params = {key: value for key, value in (("batch", batch), ("tag", tag), ("instance", instance),
                                            ("timeout", timeout)) if value is not None}
    last = "0-0" if from_oldest else after
    try:
        while True:
            try:
                for event in state.client.stream("/events", params, last):
                    last = event.id or last
                    show(event, as_json, endless=timeout is None)
            except StreamBroken:
                if timeout is not None:
                    raise
            if timeout is not None:
                return
            time.sleep(RECONNECT_PAUSE)  # an endless tail that ended (a restart, Redis lost): go on after `last`
    except KeyboardInterrupt:
        sys.exit(outcome.OK)


def show(event: Event, as_json: bool, endless: bool) -> None:
    """One event on stdout; a gap (events no longer kept) or the server's error on stderr, unless --json."""
    data = json.loads(event.data)
    if as_json:
        click.echo(json.dumps({"event": event.name, "id": event.id, "data": data}))
    elif event.name == "gap":
        render.warn(f"events after {data['after']} are no longer kept; going on from {data['oldest']}")
    elif event.name == "error":
        if not endless:
            raise ApiError(f"the event stream ended early: {data.get('error')}")
        render.warn(f"the event stream ended early ({data.get('error')}); reconnecting")
    else:
        click.echo(event_line(event.name, data))


def event_line(name: str, data: dict[str, Any]) -> str:
    """'finished task 7 instance 2 tag web DONE rc 0'."""
    words = [name] + [f"{key} {data[key]}" for key in ("task", "instance", "tag", "batch") if data.get(key)]
    words += [str(data[key]) if key == "state" else f"{key} {data[key]}"
              for key in ("state", "rc", "error") if data.get(key) is not None]
    return " ".join(words)

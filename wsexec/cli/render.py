"""How results look: rich tables and colours on a terminal, tab-separated plain text in a pipe, or --json."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

STATE_STYLES = {"DONE": "green", "ABORT": "red", "CURRENT": "yellow", "INIT": "cyan", "ACTIVE": "green",
                "DEACTIVATE": "red"}


def on_terminal(stream: Any = None) -> bool:
    return bool(getattr(stream or sys.stdout, "isatty", lambda: False)())


def console(stderr: bool = False) -> Console:
    """A console that colours only a terminal (rich also honours NO_COLOR) and sizes tables to it."""
    return Console(stderr=stderr, highlight=False, soft_wrap=not on_terminal(sys.stderr if stderr else sys.stdout))


def emit_json(value: Any) -> None:
    """The API's own JSON, unchanged: its documented schemas are the stable shape."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return when(value)
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    """Rows as a table: rich on a terminal (fits its width), tab-separated with a header line in a pipe."""
    if not on_terminal():
        click.echo("\t".join(columns).upper())
        for row in rows:
            click.echo("\t".join(cell(row.get(column)).replace("\t", " ").replace("\n", " ") for column in columns))
        return
    grid = Table(title=title, expand=False)
    for column in columns:
        grid.add_column(column.upper(), overflow="ellipsis", no_wrap=column not in ("name", "error", "script"))
    for row in rows:
        grid.add_row(*(styled(column, row.get(column)) for column in columns))
    console().print(grid)


def styled(column: str, value: Any) -> str:
    text = cell(value).replace("[", "\\[")
    style = STATE_STYLES.get(text) if column == "state" else None
    return f"[{style}]{text}[/]" if style else text


def fields(record: dict[str, Any], order: Sequence[str]) -> None:
    """One record as `key: value` lines, the known keys first."""
    keys = [key for key in order if key in record] + sorted(key for key in record if key not in order)
    width = max((len(key) for key in keys), default=0)
    for key in keys:
        if record[key] in (None, "", [], {}):
            continue
        value = cell(record[key])
        if "\n" in value.rstrip("\n"):
            click.echo(f"{key}:")
            for line in value.rstrip("\n").split("\n"):
                click.echo(f"  {line}")
        else:
            click.echo(f"{key + ':':<{width + 1}} {value.rstrip(chr(10))}")


def discard(stream: Any) -> None:
    """Send what is still written to a stream whose reader has gone to /dev/null instead (no EPIPE at exit either)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def warn(message: str) -> None:
    """A line on stderr (red on a terminal)."""
    click.secho(message, err=True, fg="red" if on_terminal(sys.stderr) else None)


def note(message: str) -> None:
    """A line on stderr for the person, not the pipe."""
    click.secho(message, err=True, dim=on_terminal(sys.stderr))


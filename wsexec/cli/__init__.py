"""wsexec's command-line client (`wsexec`): run scripts, follow them, exit with their truth."""

from wsexec.cli import events, instances  # noqa: F401  (register the `events` command, the `instances` group)
from wsexec.cli.commands import main

__all__ = ["main"]

"""wsexec's command-line client (`wsexec`): run scripts, follow them, exit with their truth."""

from wsexec.cli import instances  # noqa: F401  (registers the `instances` group on the command)
from wsexec.cli.commands import main

__all__ = ["main"]

"""wsexec's command-line client (`wsexec`): run scripts, follow them, exit with their truth."""

from wsexec.cli.commands import main

__all__ = ["main"]

"""A task's `env` and `run_as`, as pure functions shared by the API (validation, size) and the workers (what runs).

Why the variables are exported by the script itself rather than sent as SSH "env" requests: sshd accepts only what
its AcceptEnv lists (Debian's: LANG and LC_*), and drops the rest without a word. Each value goes through
shlex.quote, so the remote shell sees it byte for byte, never expanded: quotes, newlines, `$`, backticks and
backslashes included. With run_as the exports run inside the shell sudo starts, since sudo resets the environment.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NAME_MAX = 128
VALUE_MAX = 32 * 1024  # bytes (UTF-8) per value
COUNT_MAX = 64
# Refused, with why: values are literal (PATH=/opt/bin:$PATH would not expand), and these change how the shell
# itself parses or what identity the script sees, which the login or sudo sets and the script may read: a script that
# means to change one writes it in its own text.
RESERVED = frozenset({
    "PATH", "IFS", "ENV", "BASH_ENV", "CDPATH", "PS1", "PS2", "PS4", "OPTIND", "OPTARG", "PPID", "PWD", "OLDPWD",
    "HOME", "SHELL", "USER", "LOGNAME", "UID", "EUID", "SHELLOPTS", "BASHOPTS", "POSIXLY_CORRECT",
})
RESERVED_PREFIXES = ("LD_", "SUDO_", "WSEXEC_")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be exported to a task's script, or None."""
    if not NAME.fullmatch(name) or len(name) > NAME_MAX:
        return f"not a shell variable name (a letter or _, then letters, digits and _; at most {NAME_MAX})"
    if name in RESERVED or name.startswith(RESERVED_PREFIXES):
        return "reserved (the login, sudo or the shell set it); set it in the script itself if you mean to"
    return None


def value_problem(value: str) -> str | None:
    if "\0" in value:
        return "contains a NUL byte, which no environment variable can hold"
    if len(value.encode()) > VALUE_MAX:
        return f"longer than {VALUE_MAX} bytes"
    return None


def exports(env: Mapping[str, str] | None) -> str:
    """The line put before the script: `export A='x' B='y'` and a newline; empty without env."""
    if not env:
        return ""
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in sorted(env.items())) + "\n"


def script(task: Mapping[str, object]) -> str:
    """What the remote shell runs for a task: its exports, then its script as written."""
    env = task.get("env")
    return exports(env if isinstance(env, Mapping) else None) + str(task["script"])


def names(env: Mapping[str, str] | None) -> list[str]:
    """What a task shows of its env: the names, sorted (the values may be secrets, and stay out of every answer)."""
    return sorted(env or {})


def shown_names(record: Mapping[str, object]) -> list[str]:
    """A task's env_names as stored (its values are gone once it ended), or a schedule template's from its env."""
    stored = record.get("env_names")
    if isinstance(stored, list):
        return [str(name) for name in stored]
    env = record.get("env")
    return names(env if isinstance(env, Mapping) else None)


def redacted(fields: Mapping[str, object]) -> dict[str, object]:
    """Fields as the audit log keeps them: an env by its names only (the values may be secrets), the rest as given."""
    kept = {name: value for name, value in fields.items() if name != "env"}
    env = fields.get("env")
    return kept | {"env_names": names(env)} if isinstance(env, Mapping) else kept

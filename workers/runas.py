"""run_as: ask sudo on the host, before the task's script runs, whether the login user may start a shell as USER.

Why a check of its own: `sudo -n` fails at once where it would prompt (it never hangs), but it fails with rc 1 and a
line on stderr, which a script may also produce; the task's rc must stay the script's. The check runs the very
command the task will (`sudo -n -u USER -- /bin/sh -c ...`), so a sudo rule limited to /bin/sh passes it too.
"""

from __future__ import annotations

from workers.ssh import ConnectionPool, Endpoint, Stopped

CHECK_SCRIPT = ":"
CHECK_TIMEOUT = 30.0
STDERR_SHOWN = 500  # characters of sudo's complaint kept in the task's error


def refused(pool: ConnectionPool, endpoint: Endpoint, run_as: str, timeout: float) -> str | None:
    """Why the task cannot run as `run_as` on the endpoint (sudo's own words), or None; raises SshError as a run."""
    stderr = bytearray()
    limit = min(timeout, CHECK_TIMEOUT)
    try:
        rc = pool.run(endpoint, CHECK_SCRIPT, _ignore, stderr.extend, limit, _go_on, run_as=run_as)
    except Stopped:
        return f"run_as {run_as}: sudo -n -u {run_as} on {endpoint.host} did not answer within {limit:g} s"
    if rc == 0:
        return None
    said = stderr.decode("utf-8", "replace").strip()[-STDERR_SHOWN:] or "no message"
    return (f"run_as {run_as}: sudo -n -u {run_as} refused for {endpoint.user} on {endpoint.host} (rc {rc}): {said}; "
            f"it needs a sudoers rule such as '{endpoint.user} ALL=({run_as}) NOPASSWD: /bin/sh'")


def _ignore(data: bytes) -> None:
    """The check's stdout: the login shell's rc files, nothing of the task's."""


def _go_on() -> str | None:
    """The check is short and bounded by its timeout; a cancel is seen by the task's run right after."""
    return None

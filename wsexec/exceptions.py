"""Domain errors, each mapped to one HTTP status by wsexec.errors; plain Python so workers can use them too."""

from __future__ import annotations

from typing import Any


class WsexecError(Exception):
    """Base of every error the API reports with its own status."""

    status = 500
    headers: dict[str, str] = {}  # extra response headers (read only)

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class Unauthorized(WsexecError):
    """A registration token that is unknown, revoked, expired or used up (users' credentials: flask-httpauth)."""

    status = 401
    headers = {"WWW-Authenticate": 'Bearer realm="wsexec registration"'}


class Unavailable(WsexecError):
    """Something the service itself needs is missing (its SSH key unreadable): the request was fine."""

    status = 503


class Forbidden(WsexecError):
    """Allowed for the role, not for this target (a login user the instance does not allow)."""

    status = 403


class NotFound(WsexecError):
    status = 404


class Conflict(WsexecError):
    status = 409


class Unprocessable(WsexecError):
    status = 422


class TooLarge(WsexecError):
    """A body or a part of it beyond its setting's limit (an upload's file)."""

    status = 413


class TooManyRequests(WsexecError):
    """A limit that time lifts (failed logins, concurrent waits, queued tasks): the client may retry after a while."""

    status = 429

    def __init__(self, message: str, retry_after: int, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, {**(detail or {}), "retry_after": retry_after})
        self.headers = {"Retry-After": str(retry_after)}


class Saturated(TooManyRequests):
    """This process holds as many long-lived answers (event streams) as it may: another process, or later, can."""

    status = 503


class StoreFull(WsexecError):
    """Redis is at its memory budget (maxmemory, noeviction) and refuses writes: nothing of the request was kept."""

    status = 507

    def __init__(self) -> None:
        super().__init__("the task store is full: Redis is at its memory limit (maxmemory) and refused the write, so "
                         "nothing was changed; delete finished tasks or give Redis more memory, then retry")


class TaskFailed(WsexecError):
    """A task the request waited for ended ABORT or gave an unusable answer (the remote side failed)."""

    status = 502


class TaskPending(WsexecError):
    """A task the request waited for had not finished in time: the client can follow it by its id."""

    status = 504

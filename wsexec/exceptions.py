"""Domain errors, each mapped to one HTTP status by wsexec.errors; plain Python so workers can use them too."""

from __future__ import annotations

from typing import Any


class WsexecError(Exception):
    """Base of every error the API reports with its own status."""

    status = 500

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotFound(WsexecError):
    status = 404


class Conflict(WsexecError):
    status = 409


class Unprocessable(WsexecError):
    status = 422

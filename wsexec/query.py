"""The request class the app uses: query strings and forms whose get() does not raise for an absent key.

werkzeug's MultiDict.get looks a key up with [] and catches the BadRequestKeyError (an HTTPException, costly to
build) that an absent key raises. webargs asks for every field of a schema, present or not: GET /tasks/ID's `wait`
cost 8% of that request's CPU in exceptions (py-spy, `make bench-http`). Same answers, none raised.
"""

from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.datastructures import ImmutableMultiDict


class Parameters(ImmutableMultiDict[str, Any]):
    def get(self, key: str, default: Any = None, type: Any = None) -> Any:  # type: ignore[override]  # its overloads
        if key not in self:
            return default
        return super().get(key, default, type)


class WsexecRequest(Request):
    parameter_storage_class = Parameters

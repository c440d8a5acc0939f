"""The Idempotency-Key header: a retried POST (a cron job after a timeout) gets the first answer, creates nothing.

Usage, one line above a view's other decorators (so it sees the final answer)::

    @idempotent
    @blp.response(...)
    def post(self): ...

The first answer (status, body, content type) is kept per user and key for Settings.idempotency_window seconds,
with a hash of the request. The same key again: the same request gets that answer back (header
`Idempotent-Replayed: true`), a different request 422, and while the first is still running 409. A 4xx answer
created nothing, so it is not kept: the key may be used again. Any other answer is kept, errors included (a 504
from ?wait comes after its task was created).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from copy import deepcopy
from typing import Any

from flask import Response, current_app, make_response, request

from wsexec import context
from wsexec.auth import current_user
from wsexec.exceptions import Conflict, Unprocessable

HEADER = "Idempotency-Key"
MAX_LENGTH = 200
PENDING_SECONDS = 600  # longer than any request runs (?wait is at most 300 s, gunicorn's timeout 330 s)
PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH},
    "description": "retrying with the same key (and body) returns the first answer and creates nothing",
}


def fingerprint() -> str:
    """The request as far as a retry must repeat it: method, path with query, and the body (as JSON, if it is)."""
    body = request.get_json(silent=True)
    data = request.get_data() if body is None else json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(b"%s %s\n%s" % (request.method.encode(), request.full_path.encode(), data)).hexdigest()


def replay(first: dict[str, Any], request_hash: str) -> Response:
    if first["fingerprint"] != request_hash:
        raise Unprocessable(f"this {HEADER} was used for a different request", {HEADER: ["already used"]})
    if "status" not in first:
        raise Conflict(f"a request with this {HEADER} is still in progress")
    response = current_app.response_class(first["body"], status=first["status"], mimetype=first["mimetype"])
    response.headers["Idempotent-Replayed"] = "true"
    return response


def idempotent(view: Callable[..., Any]) -> Callable[..., Any]:
    """Honour the Idempotency-Key header on this view (see the module's docstring)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not key.strip() or len(key) > MAX_LENGTH:
            raise Unprocessable(f"{HEADER} must be 1 to {MAX_LENGTH} characters", {HEADER: ["invalid"]})
        store, user, request_hash = context.store(), current_user().name, fingerprint()
        first = store.idempotency_begin(user, key, {"fingerprint": request_hash}, PENDING_SECONDS)
        if first is not None:
            return replay(first, request_hash)
        try:
            try:
                response = make_response(view(*args, **kwargs))
            except Exception as error:  # a 502/504 after the task was created must be kept like a success
                response = make_response(current_app.handle_user_exception(error))
        except BaseException:
            store.idempotency_release(user, key)
            raise
        if 400 <= response.status_code < 500:
            store.idempotency_release(user, key)
        else:
            answer = {"status": response.status_code, "body": response.get_data(as_text=True),
                      "mimetype": response.mimetype}
            store.idempotency_save(user, key, {"fingerprint": request_hash, **answer},
                                   context.settings().idempotency_window)
        return response

    # Documented as one more parameter of the operation (flask-smorest's arguments doc; header parameters pass as is).
    wrapper._apidoc = deepcopy(getattr(view, "_apidoc", {}))  # type: ignore[attr-defined]
    wrapper._apidoc.setdefault("arguments", {}).setdefault("parameters", []).append(PARAMETER)  # type: ignore
    return wrapper

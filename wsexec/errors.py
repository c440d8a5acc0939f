"""One JSON error shape for the whole API: {"error": "...", "detail": ...}, with the right status."""

from __future__ import annotations

import io
import logging
from typing import Any

from flask import Flask, current_app, jsonify, request
from flask_smorest import Api
from marshmallow import Schema, fields
from redis.exceptions import OutOfMemoryError, RedisError
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge, UnsupportedMediaType

from wsexec import openapi
from wsexec.exceptions import StoreFull, WsexecError

log = logging.getLogger(__name__)

BODY_METHODS = {"POST", "PUT", "PATCH"}
FORM_ENDPOINTS: set[str] = set()  # views that take multipart/form-data and check their body themselves (uploads)


def error_response(status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None) -> Any:
    response = jsonify({"error": error, "detail": detail})
    response.status_code = status
    response.headers.update(headers or {})
    return response


class ErrorSchema(Schema):
    """The body of every 4xx and 5xx answer, as error_response writes it (documents it in the OpenAPI)."""

    error = fields.String(required=True, metadata={"description": "what went wrong, for a human"})
    detail = fields.Raw(
        required=True,
        allow_none=True,
        metadata={"description": "specifics: field-by-field messages for 422, the role needed for 403..."},
    )


class WsexecApi(Api):
    """flask-smorest's Api with our error body instead of its {code, status, message, errors}."""

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # each operation lists the errors it can give (wsexec.openapi)

    def __init__(self, app: Flask) -> None:
        self.access_plugin = openapi.AccessPlugin()
        plugins = {"marshmallow_plugin": openapi.WsexecMarshmallowPlugin(), "extra_plugins": [self.access_plugin]}
        super().__init__(app, spec_kwargs=plugins)
        openapi.declare_security(self.spec)

    def register_blueprint(self, blp: Any, **options: Any) -> None:
        with self.access_plugin.documenting(blp):
            super().register_blueprint(blp, **options)

    def handle_http_exception(self, error: HTTPException) -> Any:
        data = getattr(error, "data", None) or {}
        detail = data.get("errors") or data.get("messages")
        if isinstance(detail, dict) and set(detail) <= {"json", "query", "view_args"}:
            detail = {k: v for location in detail.values() for k, v in _as_dict(location).items()}
        message = data.get("message") or error.description or error.name
        if error.code == 422 and detail:
            message = "validation failed"
        elif error.code == 400 and detail:  # webargs reports a body that is not valid JSON this way
            message, detail = "request body is not valid JSON", None
        elif error.code == 413:  # the words nginx/wsexec.conf answers with
            message, detail = "request body too large", {"max_body": request.max_content_length}
        if error.code and error.code >= 500:
            log.error("%s %s failed: %s", request.method, request.path, error)
        headers = dict(data.get("headers") or {})
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            headers["Allow"] = ", ".join(error.valid_methods)
        return error_response(error.code or 500, message, detail, headers)


def _as_dict(messages: Any) -> dict[str, Any]:
    return messages if isinstance(messages, dict) else {"_body": messages}


def require_json_body() -> None:
    """415 for a body that does not say it is JSON (curl -d sends form encoding by default), 400 for bad JSON.

    Parsed once here (Flask caches it) so that no view or webargs meets what json.loads raises beyond ValueError:
    "[[[[..." nested deeper than the stack (RecursionError), digits beyond int's limit (a ValueError webargs misses).
    """
    if request.endpoint in FORM_ENDPOINTS:
        return
    if request.method in BODY_METHODS and (request.content_length or request.headers.get("Transfer-Encoding")):
        if not request.is_json:
            raise UnsupportedMediaType("send the body as JSON with Content-Type: application/json")
        if request.content_length is None:
            _measure_chunked_body()
        try:
            body = request.get_json()
        except (BadRequest, RecursionError) as exc:
            raise BadRequest("request body is not valid JSON") from exc
        if not _valid_unicode(body):
            raise BadRequest("request body is not valid JSON: a \\ud800-\\udfff escape is not half of a pair")


def _measure_chunked_body() -> None:
    """413 for a chunked body over the limit: werkzeug would silently cut it there, and the JSON then looks broken."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    data = request.environ["wsgi.input"].read(limit + 1)  # before request.stream wraps it
    if len(data) > limit:
        raise RequestEntityTooLarge()
    request.environ.update({"wsgi.input": io.BytesIO(data), "CONTENT_LENGTH": str(len(data))})


def _valid_unicode(value: Any) -> bool:
    """False if a string holds a lone surrogate, which nothing can encode (Redis would answer 500)."""
    stack = [value]
    while stack:  # a loop, not recursion: the body may nest nearly as deep as the stack allows
        item = stack.pop()
        if isinstance(item, dict):
            stack += [*item, *item.values()]
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return False
    return True


def init_app(app: Flask) -> Api:
    api = WsexecApi(app)

    @app.errorhandler(WsexecError)
    def handle_domain_error(error: WsexecError) -> Any:
        return error_response(error.status, error.message, error.detail, error.headers)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Any:
        if isinstance(error, HTTPException):
            return api.handle_http_exception(error)
        if isinstance(error, OutOfMemoryError):  # at its memory budget: the scripts refused the whole write
            log.error("Redis full on %s %s: %s", request.method, request.path, error)
            return handle_domain_error(StoreFull())
        if isinstance(error, RedisError):  # Redis restarting or gone: nothing wrong with the request, try again
            log.error("Redis unavailable on %s %s: %s", request.method, request.path, error)
            return error_response(503, "storage unavailable, try again shortly", headers={"Retry-After": "5"})
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error")

    return api

"""/wsexec/files: put a file on an instance or a tag's instances, fetch one back (operator); each is a task."""

from __future__ import annotations

import io
import posixpath
from typing import IO, Any
from urllib.parse import quote

from flask import Response, request, stream_with_context
from flask.views import MethodView
from marshmallow import ValidationError
from werkzeug.exceptions import UnsupportedMediaType

from wsexec import audit, context, errors, quotas
from wsexec.auth import current_user
from wsexec.blueprint import Blueprint
from wsexec.exceptions import Unprocessable
from wsexec.files import service
from wsexec.files.schemas import FetchSchema, UploadBody, UploadForm
from wsexec.idempotency import HEADER as IDEMPOTENCY_HEADER
from wsexec.idempotency import idempotent
from wsexec.roles import Role
from wsexec.tasks import service as tasks
from wsexec.tasks.schemas import TaskSchema
from wsexec.waits import WaitArgs

blp = Blueprint("files", __name__, write_role=Role.OPERATOR,
                description="Files to and from instances over SFTP, each destination a task (kind upload or fetch)")

FORM_OVERHEAD = 1024 * 1024  # bytes of an upload's body besides the file: the other fields and multipart framing
UPLOAD = "files.Upload"
ONE_OR_MANY = {"oneOf": [TaskSchema, {"type": "array", "items": TaskSchema}]}
UPLOAD_BODY = {
    "required": True,
    "description": "multipart/form-data: the file as `content`, the other fields as plain form fields",
    "content": {"multipart/form-data": {
        "schema": UploadBody,
        "encoding": {"content": {"contentType": "application/octet-stream"}},
    }},
}
FILE_ANSWER = {"type": "string", "format": "binary"}
errors.FORM_ENDPOINTS.add(UPLOAD)


@blp.before_request
def upload_limit() -> None:
    """An upload's body may be larger than any other (WSEXEC_FILE_MAX plus the form around the file)."""
    if request.endpoint == UPLOAD:
        request.max_content_length = context.settings().file_max + FORM_OVERHEAD


def _upload_fields() -> tuple[IO[bytes], dict[str, Any]]:
    """The content (a spooled file, or a text field as bytes) and the other fields, validated; 415/422 otherwise."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("send the file as multipart/form-data (curl -F content=@FILE -F path=...)")
    form, files = request.form, request.files  # 413 beyond the limit, from werkzeug
    repeated = sorted(key for key in {*form, *files} if len(form.getlist(key)) + len(files.getlist(key)) > 1)
    if repeated:
        raise Unprocessable("validation failed", {key: ["given more than once"] for key in repeated})
    if "content" in files:
        content: Any = files["content"].stream
    elif "content" in form:
        content = io.BytesIO(form["content"].encode())
    else:
        raise Unprocessable("validation failed", {"content": ["required: the file (curl -F content=@FILE)"]})
    unexpected = {key: ["unknown file field: only content is a file"] for key in files if key != "content"}
    if unexpected:
        raise Unprocessable("validation failed", unexpected)
    try:
        fields = UploadForm().load({key: value for key, value in form.items() if key != "content"})
    except ValidationError as error:
        raise Unprocessable("validation failed", error.messages) from None
    return content, fields


@blp.route("/files")
class Upload(MethodView):
    @blp.arguments(WaitArgs, location="query", as_kwargs=True)
    @blp.doc(requestBody=UPLOAD_BODY)
    @blp.alt_response(201, schema=ONE_OR_MANY, description="the upload task; an array for a target_tag; with ?wait, "
                                                            "as they are once finished or the wait is over")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, wait: int | None = None) -> Any:
        """Put a file on an instance (or on every ACTIVE instance of target_tag): written under a temporary name and
        renamed, never half-written; refused (the task ends ABORT) if it exists, unless overwrite."""
        if request.headers.get(IDEMPOTENCY_HEADER):
            raise Unprocessable(f"{IDEMPOTENCY_HEADER} is not supported for uploads (their bodies are not kept for "
                                "comparison): send it again with overwrite=true if an answer was lost",
                                {IDEMPOTENCY_HEADER: ["not supported here"]})
        content, fields = _upload_fields()
        with quotas.wait_slot(wait):
            created = service.upload(content, fields, current_user().name)
            ids = [task["id"] for task in created]
            detail = {"ids": ids, "batches": sorted({t["batch"] for t in created if t.get("batch")}),
                      "path": fields["path"], "size": created[0]["size"], "sha256": created[0]["sha256"],
                      "overwrite": fields["overwrite"], "mode": fields.get("mode")}
            audit.record("file.upload", audit.target("task", ids), detail)
            if wait is not None:
                created = tasks.wait_finished(ids, wait)
        many = "target_tag" in fields
        return TaskSchema(many=many).dump(created if many else created[0]), 201


@blp.route("/files/fetch")
class Fetch(MethodView):
    @idempotent
    @blp.arguments(FetchSchema)
    @blp.arguments(WaitArgs, location="query", as_kwargs=True)
    @blp.response(201, TaskSchema, description="the fetch task; with ?wait, once finished or the wait is over")
    @blp.alt_response(409, response="CONFLICT")
    def post(self, fields: dict[str, Any], wait: int | None = None) -> Any:
        """Bring one file back from an instance (at most WSEXEC_FETCH_MAX bytes): GET /wsexec/tasks/{id}/file once
        the task is DONE."""
        with quotas.wait_slot(wait):
            task = service.fetch(fields, current_user().name)
            audit.record("file.fetch", f"task:{task['id']}", {"instance": fields["instance"], "path": fields["path"]})
            if wait is not None:
                (task,) = tasks.wait_finished([task["id"]], wait)
        return task


@blp.route("/tasks/<int:task_id>/file")
class Fetched(MethodView):
    @blp.response(200, FILE_ANSWER, content_type="application/octet-stream",
                  description="the file a DONE fetch task brought back (its SHA-256 in X-Wsexec-Sha256)")
    @blp.alt_response(409, response="CONFLICT")
    def get(self, task_id: int) -> Response:
        """The fetched file, streamed; 404 for a task of another kind, 409 until the fetch is DONE."""
        task, chunks = service.fetched(task_id)
        name = posixpath.basename(task["path"])
        plain = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
        headers = {"Content-Length": str(task["size"]), "X-Wsexec-Sha256": task.get("sha256", ""),
                   "Content-Disposition": f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}"}
        return Response(stream_with_context(chunks), mimetype="application/octet-stream", headers=headers)

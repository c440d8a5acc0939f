"""What POST /wsexec/files (multipart form fields) and POST /wsexec/files/fetch (JSON) accept."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from wsexec import validators

PATH_MAX = 4096  # bytes: Linux's PATH_MAX
MODE = re.compile(r"^[0-7]{3,4}$")
DEFAULT_MODE = "0644"


def file_path(value: str) -> None:
    """An absolute, normalized path to a file: no '.', '..' or empty component, no NUL, no trailing '/'."""
    if "\0" in value or len(value.encode()) > PATH_MAX:
        raise ValidationError(f"at most {PATH_MAX} bytes, no NUL")
    if not value.startswith("/") or value.startswith("//") or value == "/" or posixpath.normpath(value) != value:
        raise ValidationError("an absolute path to a file, normalized (no '.', '..', '//' or trailing '/')")


class Destination(Schema):
    """Where and as whom, like a task: `instance` or a target tag (every ACTIVE instance with it)."""

    name = fields.String(validate=validate.Length(min=1, max=200))
    tag = fields.String(validate=validators.tag, metadata={"description": "the task's label (default: files)"})
    user = fields.String(validate=validators.posix_user, metadata={"description": "default: the instance's user"})
    timeout = validators.Integer(validate=validate.Range(min=1), metadata={"description": "seconds"})
    path = fields.String(required=True, validate=file_path, metadata={"description": "absolute path on the instance"})
    instance = validators.Integer(validate=validate.Range(min=1))


class UploadForm(Destination):
    """The form fields besides `content` (the file itself)."""

    class Meta:
        openapi = {"oneOf": [{"required": ["instance"]}, {"required": ["target_tag"]}]}  # one_destination

    target_tag = fields.String(validate=validators.tag, metadata={
        "description": "instead of instance: one upload per ACTIVE instance with this tag (a batch)"})
    mode = fields.String(validate=validate.Regexp(MODE, error="octal, like 0644 or 755"), metadata={
        "description": f"octal; default: the replaced file's mode with overwrite, else {DEFAULT_MODE}",
        "pattern": MODE.pattern})
    overwrite = fields.Boolean(load_default=False, metadata={
        "description": "replace an existing file (atomically); false: the task ends ABORT if the file exists"})

    @validates_schema
    def one_destination(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("instance" in data) == ("target_tag" in data):
            raise ValidationError("give either instance (an id) or target_tag", "instance")

    @post_load
    def normalize_mode(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "mode" in data:
            data["mode"] = f"{int(data['mode'], 8):04o}"
        return data


class UploadBody(UploadForm):
    """The whole multipart body, as documented: the fields and the file."""

    content = fields.Raw(required=True, metadata={
        "type": "string", "format": "binary",
        "description": "the file, at most WSEXEC_FILE_MAX bytes (curl -F content=@FILE)"})


class FetchSchema(Destination):
    """One file from one instance."""

    instance = validators.Integer(required=True, validate=validate.Range(min=1))

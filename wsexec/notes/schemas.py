"""Note fields as the API reads and writes them."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate

from wsexec import validators
from wsexec.schemas import ApiSchema

CONTENT_MAX = 512  # alpacon's limit


class NoteSchema(ApiSchema):
    id = fields.Integer(dump_only=True)
    instance = validators.Integer(required=True, validate=validate.Range(min=1), metadata={"description": "its id"})
    author = fields.String(dump_only=True, metadata={"description": "who wrote it"})
    content = fields.String(required=True, validate=validate.Length(min=1, max=CONTENT_MAX))
    private = fields.Boolean(load_default=False, metadata={"description": "shown to its author only"})
    pinned = fields.Boolean(load_default=False, metadata={"description": "listed before the others"})
    created_at = fields.Float(dump_only=True)
    updated_at = fields.Float(dump_only=True)


class NoteUpdateSchema(Schema):
    """PATCH: the content and the flags; a note stays on its instance."""

    content = fields.String(validate=validate.Length(min=1, max=CONTENT_MAX))
    private = fields.Boolean()
    pinned = fields.Boolean()

    @pre_load
    def refuse_instance(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and "instance" in data:
            raise ValidationError({"instance": ["a note's instance cannot change: create a new note there"]})
        return data


class NoteFilterSchema(Schema):
    instance = validators.Integer(validate=validate.Range(min=1))

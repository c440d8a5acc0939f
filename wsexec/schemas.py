"""The base of every response schema."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, post_dump


class ApiSchema(Schema):
    """Every declared field appears in the answer, null when unset (rc before a task ends, user not given...)."""

    @post_dump
    def fill_nulls(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        for name, field in self.dump_fields.items():
            data.setdefault(field.data_key or name, None)
        return data

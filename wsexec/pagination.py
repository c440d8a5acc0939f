"""Page arguments and the {count, next, previous, results} envelope every list answers with."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import request
from marshmallow import Schema, fields, validate

from wsexec import context

MAX_PAGE_SIZE = 100


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    page_size = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))


def page_schema(item_schema: type[Schema]) -> type[Schema]:
    """The envelope schema for a list of item_schema (for responses and the OpenAPI document)."""
    return Schema.from_dict(
        {
            "count": fields.Integer(),
            "next": fields.String(allow_none=True),
            "previous": fields.String(allow_none=True),
            "results": fields.List(fields.Nested(item_schema)),
        },
        name=f"{item_schema.__name__.removesuffix('Schema')}Page",
    )


def envelope(count: int, results: list[Any], page: int, page_size: int) -> dict[str, Any]:
    def link(number: int) -> str:
        """This URL with the other page, relative or on the configured public URL, never on the client's Host header.

        Query args kept as given (not url_for's: ?_external=1 broke it).
        """
        query = urlencode({**request.args.to_dict(), "page": number, "page_size": page_size})
        return f"{context.settings().public_url.rstrip('/')}{request.script_root}{request.path}?{query}"

    last_page = max((count + page_size - 1) // page_size, 1)
    return {
        "count": count,
        "next": link(page + 1) if page < last_page else None,
        "previous": link(min(page - 1, last_page)) if page > 1 else None,
        "results": results,
    }

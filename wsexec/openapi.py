"""The OpenAPI document: our error body, who may call what, and answers as they really are (unset fields null).

flask-smorest builds the document from the blueprints' decorators; the two apispec plugins here add what every
route shares, so a new blueprint is documented completely without repeating it:
- security: HTTP basic and bearer for everything, `security: []` for public blueprints (health);
- the error answers a route can give, from how it is called: 401, 429 (and 403 when the role needed is above
  viewer) unless public, 404 with a path parameter, 400/413/415/507 for a method with a body, 422 with a JSON body;
- ApiSchema answers fill every unset field with null, so their optional fields are documented nullable; request
  bodies of the same schema get their own `...Input` component, where null is not accepted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from copy import copy
from http import HTTPStatus
from typing import Any

from apispec import APISpec, BasePlugin
from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from flask import Blueprint
from marshmallow import Schema, fields

from wsexec import validators
from wsexec.blueprint import access_of
from wsexec.roles import Role
from wsexec.schemas import ApiSchema

SECURITY_SCHEMES = {
    "basicAuth": {"type": "http", "scheme": "basic", "description": "a user from WSEXEC_USERS"},
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "a token from WSEXEC_TOKENS"},
}
REGISTRATION_SCHEME = {"registrationToken": {
    "type": "http", "scheme": "bearer",
    "description": "a registration token (POST /wsexec/registrations): only for /wsexec/register.sh and /register",
}}
BODY_METHODS = ("post", "put", "patch")
SUBSCHEMA_KEYS = ("items", "oneOf", "anyOf", "allOf")


class InputVariant:
    """Marks the request-body variant of an ApiSchema: as the client sends it, nothing null unless allowed."""


def _fills_nulls(schema: Schema | type[Schema]) -> bool:
    """An ApiSchema answer; not a request-body variant, nor a partial one (those are only ever loaded)."""
    instance = schema() if isinstance(schema, type) else schema
    return isinstance(instance, ApiSchema) and not isinstance(instance, InputVariant) and not instance.partial


_variants: dict[type[Schema], type[Schema]] = {}


def _input_variant(schema: Any) -> Any:
    """The same schema as a request body (class or instance kept as given); anything else unchanged."""
    if isinstance(schema, dict):
        return {key: _input_variant(value) if key in SUBSCHEMA_KEYS else value for key, value in schema.items()}
    if isinstance(schema, list):
        return [_input_variant(item) for item in schema]
    if not (isinstance(schema, Schema) or isinstance(schema, type) and issubclass(schema, Schema)):
        return schema
    if not _fills_nulls(schema):
        return schema
    cls = schema if isinstance(schema, type) else type(schema)
    if cls not in _variants:
        name = cls.__name__.removesuffix("Schema") + "InputSchema"
        _variants[cls] = type(name, (InputVariant, cls), {"__doc__": cls.__doc__})
    return _variants[cls] if isinstance(schema, type) else _variants[cls](many=schema.many)


class NullableConverter(OpenAPIConverter):
    """Optional fields of ApiSchema answers are nullable (ApiSchema.fill_nulls answers null for unset ones)."""

    nullable_next = False  # set for the schema whose fields are converted next (nested schemas set their own)

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        """Also what a schema's Meta.openapi adds (rules of its validates_schema methods, e.g. oneOf required)."""
        self.nullable_next = _fills_nulls(schema)
        return super().schema2jsonschema(schema) | getattr(getattr(schema, "Meta", None), "openapi", {})

    def fields2jsonschema(self, fields: Any, *, partial: Any = None) -> dict[str, Any]:
        if self.nullable_next:
            self.nullable_next = False
            fields = {name: _nullable(field) for name, field in fields.items()}
        return super().fields2jsonschema(fields, partial=partial)


def _nullable(field: fields.Field) -> fields.Field:
    if field.required or field.allow_none or field.load_only:
        return field
    field = copy(field)
    field.allow_none = True
    return field


VALIDATOR_SCHEMAS: dict[Callable[..., Any], dict[str, Any]] = {  # what each validator accepts, in JSON schema
    validators.tag: {"pattern": validators.TAG.pattern},
    validators.posix_user: {"pattern": validators.POSIX_USER.pattern},
    validators.host: {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}, {"format": "hostname"}]},
}


def validator_schemas(self: OpenAPIConverter, field: fields.Field, **kwargs: Any) -> dict[str, Any]:
    """So clients (and schemathesis) know the format a validator function checks."""
    return {key: value for v in field.validators for key, value in VALIDATOR_SCHEMAS.get(v, {}).items()}


class WsexecMarshmallowPlugin(MarshmallowPlugin):
    Converter = NullableConverter

    def init_spec(self, spec: APISpec) -> None:
        super().init_spec(spec)
        assert self.converter
        self.converter.add_attribute_function(validator_schemas)

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> None:
        for operation in (operations or {}).values():
            for content in operation.get("requestBody", {}).get("content", {}).values():
                if "schema" in content:
                    content["schema"] = _input_variant(content["schema"])
        super().operation_helper(path=path, operations=operations, **kwargs)


class AccessPlugin(BasePlugin):
    """Security and the error answers of each operation, from the blueprint being registered and the route."""

    def __init__(self) -> None:
        self.blueprint: Blueprint | None = None

    @contextlib.contextmanager
    def documenting(self, blueprint: Blueprint) -> Iterator[None]:
        self.blueprint = blueprint
        try:
            yield
        finally:
            self.blueprint = None

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            responses = operation.setdefault("responses", {})
            errors: list[HTTPStatus] = []
            access = access_of(self.blueprint)
            if access.public:
                operation["security"] = []
            elif access.registration:
                operation["security"] = [{name: []} for name in REGISTRATION_SCHEME]
                errors += [HTTPStatus.UNAUTHORIZED, HTTPStatus.TOO_MANY_REQUESTS]  # bad tokens count as failed logins
            else:
                role = access.role_for(method)
                operation["x-required-role"] = role.label
                errors += [HTTPStatus.UNAUTHORIZED] + ([HTTPStatus.FORBIDDEN] if role > Role.VIEWER else [])
                errors.append(HTTPStatus.TOO_MANY_REQUESTS)  # failed logins; per-user waits and tasks (wsexec.quotas)
            if "{" in (path or ""):
                errors.append(HTTPStatus.NOT_FOUND)
            if method in BODY_METHODS:  # any body sent is checked (errors.require_json_body), documented or not
                errors += [HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_ENTITY_TOO_LARGE]
                errors += [HTTPStatus.UNSUPPORTED_MEDIA_TYPE, HTTPStatus.INSUFFICIENT_STORAGE]  # 507: Redis is full
                if "requestBody" in operation:
                    errors.append(HTTPStatus.UNPROCESSABLE_ENTITY)
            for status in errors:  # flask-smorest registers a response named after each status, with ERROR_SCHEMA
                responses.setdefault(str(status.value), status.name)


def declare_security(spec: APISpec) -> None:
    """Both user schemes, either accepted everywhere (operations of public blueprints say `security: []`, the
    registration routes their own scheme)."""
    for name, scheme in {**SECURITY_SCHEMES, **REGISTRATION_SCHEME}.items():
        spec.components.security_scheme(name, scheme)
    spec.options["security"] = [{name: []} for name in SECURITY_SCHEMES]
    unauthorized = spec.components._subsections_lazy["response"].get("UNAUTHORIZED")
    if unauthorized is not None:  # flask-smorest registers one lazy response per status
        unauthorized["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Basic, Bearer"}}
    too_many = spec.components._subsections_lazy["response"].get("TOO_MANY_REQUESTS")
    if too_many is not None:
        too_many["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}

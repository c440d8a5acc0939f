"""/wsexec/registrations (admins issue and revoke tokens) and the two routes a registration token opens:
/wsexec/register.sh (the script a new server runs) and /wsexec/register (what the script calls)."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView

from wsexec import audit, context
from wsexec.blueprint import Blueprint
from wsexec.instances.schemas import InstanceSchema
from wsexec.pagination import PageArgs, envelope, page_schema
from wsexec.registrations import service, tokens
from wsexec.registrations.schemas import IssuedRegistrationSchema, RegisterSchema, RegistrationSchema
from wsexec.roles import Role

blp = Blueprint("registrations", __name__, read_role=Role.ADMIN, write_role=Role.ADMIN,
                description="Registration tokens that let new servers register themselves (admins only)")
register_blp = Blueprint(
    "register", __name__, registration=True,
    description="What a new server calls with a registration token (no user credentials work here, and the token "
                "works nowhere else)",
)
SCRIPT_TYPE = "text/x-shellscript"


@blp.route("")
class Registrations(MethodView):
    @blp.arguments(PageArgs, location="query", as_kwargs=True)
    @blp.response(200, page_schema(RegistrationSchema))
    def get(self, page: int, page_size: int) -> dict[str, Any]:
        """List registrations, newest first (their tokens are never shown again)."""
        count, items = context.store().registrations.page(page, page_size)
        return envelope(count, items, page, page_size)

    @blp.arguments(RegistrationSchema)
    @blp.response(201, IssuedRegistrationSchema)
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def post(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Issue a registration token: the answer shows it once, with the command a new server runs."""
        return service.issue(fields)


@blp.route("/<int:registration_id>")
class Registration(MethodView):
    @blp.response(200, RegistrationSchema)
    def get(self, registration_id: int) -> dict[str, Any]:
        """One registration."""
        return context.store().registrations.get(registration_id)

    @blp.response(204)
    def delete(self, registration_id: int) -> None:
        """Revoke a registration: its token is refused from now on (the instances it registered stay)."""
        context.store().registrations.delete(registration_id)
        audit.record("registration.delete", f"registration:{registration_id}")


@register_blp.route("/register.sh")
class Script(MethodView):
    @register_blp.response(200, {"type": "string"}, content_type=SCRIPT_TYPE,
                           description="a POSIX sh script: pipe it to sh")
    @register_blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self) -> Response:
        """The registration script, for `curl -fsS -H "Authorization: Bearer TOKEN" .../register.sh | sh`."""
        registration, token = tokens.current()
        return Response(service.script(registration, token), mimetype=SCRIPT_TYPE)


@register_blp.route("/register")
class Register(MethodView):
    @register_blp.arguments(RegisterSchema)
    @register_blp.response(201, InstanceSchema)
    @register_blp.alt_response(409, response="CONFLICT")
    def post(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Register this server: an instance with the registration's tag and user and this host key pinned."""
        registration, _ = tokens.current()
        return service.register(registration, fields)

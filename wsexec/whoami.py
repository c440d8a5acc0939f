"""GET /wsexec/whoami: who the credentials are and their role, so a client (the console) checks a login and shows
only what that role may do. The API refuses the rest anyway."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields

from wsexec.auth import current_user
from wsexec.blueprint import Blueprint
from wsexec.roles import Role

blp = Blueprint("whoami", __name__, description="The caller's name and role")


class WhoamiSchema(Schema):
    name = fields.String(metadata={"description": "the basic-auth user or the token's name"})
    role = fields.String(metadata={"enum": [role.label for role in Role]})


@blp.route("")
class Whoami(MethodView):
    @blp.response(200, WhoamiSchema)
    def get(self) -> dict[str, Any]:
        """The authenticated caller (any role)."""
        user = current_user()
        return {"name": user.name, "role": user.role.label}

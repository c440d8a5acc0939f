"""flask-smorest's Blueprint with the access its routes need, declared where it is made (as flask-smorest extends
its own Blueprint), so authentication (wsexec.auth) and the OpenAPI document (wsexec.openapi) read one source."""

from __future__ import annotations

from typing import Any

import flask_smorest

from wsexec.roles import Access, Role


class Blueprint(flask_smorest.Blueprint):
    """`Blueprint("tasks", __name__, write_role=Role.OPERATOR)`; `public=True` for the one without credentials,
    `registration=True` for the routes a registration token opens (and nothing else does)."""

    def __init__(self, *args: Any, read_role: Role = Role.VIEWER, write_role: Role = Role.ADMIN, public: bool = False,
                 registration: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access = Access(read_role, write_role, public, registration)


def access_of(blueprint: object) -> Access:
    """A blueprint's declared access; others (flask-smorest's own, serving openapi.json) get the defaults."""
    return blueprint.access if isinstance(blueprint, Blueprint) else Access()

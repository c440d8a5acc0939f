"""Registration tokens: made, hashed, and checked for the routes that take them (and only those: they are no user's
credentials, so WSEXEC_TOKENS never knows them and every other route refuses them)."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from flask import g, request

from wsexec import accesslog, context, logins
from wsexec.exceptions import Unauthorized
from wsexec.store.registrations import REFUSED

PREFIX = "wsreg_"  # tells it apart from an API token at a glance (and for secret scanners)


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """Stored instead of the token, as API tokens are (a long random string: a fast hash is enough)."""
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate() -> None:
    """Before a registration route: the bearer token must name a registration still usable (401 otherwise).

    A token nobody issued counts as a failed login of this address, as a wrong API token does.
    """
    logins.refuse_if_locked(None)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a registration token is required: Authorization: Bearer <token>")
    registration = context.store().registrations.by_token(digest(token.strip()))
    if registration is None:
        logins.failed(None)
        raise Unauthorized("not a registration token (or revoked)")
    refusal = refused(registration)
    if refusal:
        raise Unauthorized(refusal)
    request.environ[accesslog.USER_ENVIRON_KEY] = f"registration:{registration['id']}"
    g.registration, g.registration_token = registration, token.strip()


def refused(registration: dict[str, Any]) -> str | None:
    """Why this registration may not register a server now, or None."""
    if registration["expires_at"] <= time.time():
        return REFUSED["expired"]
    if registration["uses_left"] <= 0:
        return REFUSED["used"]
    return None


def current() -> tuple[dict[str, Any], str]:
    """The registration authenticate() found for this request, and its token."""
    return g.registration, g.registration_token

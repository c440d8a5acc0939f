"""Who may call what: basic-auth users and bearer tokens from the environment, each with a role.

Passwords are stored as werkzeug hashes; tokens as SHA-256 digests (they are long random strings, so a fast
hash is enough) compared in constant time. `wsexec-auth hash PASSWORD` and `wsexec-auth token NAME ROLE` (or
`python -m wsexec.auth ...`) print the values to put in WSEXEC_USERS / WSEXEC_TOKENS.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask, current_app, g, request
from flask_httpauth import HTTPBasicAuth, HTTPTokenAuth, MultiAuth
from werkzeug.security import generate_password_hash

from wsexec import accesslog, logins
from wsexec.blueprint import access_of
from wsexec.config import Settings
from wsexec.errors import error_response
from wsexec.registrations import tokens as registration_tokens
from wsexec.roles import Role


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


@dataclass
class Credentials:
    passwords: dict[str, tuple[str, Role]]  # user -> (password hash, role)
    tokens: dict[str, Principal]  # sha256 hex -> who

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        """Parse "name:role:secret" entries (whitespace separated) from the variables and the optional file."""
        entries = [("user", e) for e in settings.users.split()] + [("token", e) for e in settings.tokens.split()]
        if settings.users_file:
            for line in Path(settings.users_file).read_text().splitlines():
                kind, _, entry = line.strip().partition(" ")
                if kind in ("user", "token"):
                    entries.append((kind, entry.strip()))
        credentials = cls({}, {})
        for kind, entry in entries:
            name, role_name, secret = entry.split(":", 2)
            role = Role[role_name.upper()]
            if kind == "user":
                credentials.passwords[name] = (secret, role)
            else:
                credentials.tokens[secret.lower()] = Principal(name, role)
        return credentials


basic = HTTPBasicAuth()
bearer = HTTPTokenAuth(scheme="Bearer")
multi = MultiAuth(basic, bearer)


def _credentials() -> Credentials:
    return current_app.extensions["wsexec_credentials"]


# A scrypt check costs 0.1-0.5 s of CPU: a cron job polling with basic auth would pay it on every request. Only
# successful checks are remembered (keyed by an HMAC of the password with a per-process secret, never the password
# itself), so guessing still pays full price for every try.
_CACHE_SECRET = secrets.token_bytes(32)
_VERIFIED_MAX = 1024
_verified: set[tuple[str, bytes]] = set()


@dataclass
class _Check:
    """A check under way: requests with the same credentials that come meanwhile wait for its verdict instead of
    hashing too (a client opening 50 connections at once would otherwise cost 50 checks before the first is cached:
    seconds of every core, issue 15). Different passwords, a guesser's, never share one."""

    done: threading.Event = field(default_factory=threading.Event)
    matched: bool = False


_checking: dict[tuple[str, bytes], _Check] = {}
_checking_lock = threading.Lock()


def _password_matches(stored_hash: str, password: str) -> bool:
    key = (stored_hash, hmac.new(_CACHE_SECRET, password.encode(), hashlib.sha256).digest())
    if key in _verified:
        return True
    with _checking_lock:
        check = _checking.get(key)
        first = check is None
        if check is None:
            check = _checking[key] = _Check()
    if not first:
        check.done.wait()
        return check.matched
    try:
        check.matched = logins.hash_matches(stored_hash, password)
        if check.matched:
            if len(_verified) >= _VERIFIED_MAX:
                _verified.clear()
            _verified.add(key)
    finally:
        with _checking_lock:
            del _checking[key]
        check.done.set()
    return check.matched


def _authenticated(principal: Principal) -> Principal:
    """Who the access log names (wsexec.accesslog): only someone whose credentials were just verified."""
    request.environ[accesslog.USER_ENVIRON_KEY] = principal.name
    return principal


@basic.verify_password
def verify_password(username: str, password: str) -> Principal | None:
    """Locked-out guessers are refused before any hashing; unknown names cost what wrong passwords cost."""
    if not username:  # no credentials at all (flask-httpauth asks anyway): nothing to count or check
        return None
    logins.refuse_if_locked(username)
    passwords = _credentials().passwords
    stored = passwords.get(username)
    if stored is None:
        logins.check_unknown_user(password, [known_hash for known_hash, _ in passwords.values()])
    elif _password_matches(stored[0], password):
        logins.succeeded(username)
        return _authenticated(Principal(username, stored[1]))
    logins.failed(username)
    return None


@bearer.verify_token
def verify_token(token: str) -> Principal | None:
    """A right token passes without asking Redis; only a wrong one meets the address's lock, then counts against it.

    A token is 256 random bits, nothing a guesser finds, and its check is one SHA-256: the lock, checked before the
    hashing of passwords, has nothing to save here, and a valid token must not be locked out by someone guessing
    from the same address (a NAT). That is one Redis round trip fewer on every token request.
    """
    digest = hashlib.sha256(token.encode()).hexdigest()
    found = None
    for stored, principal in _credentials().tokens.items():
        if hmac.compare_digest(stored, digest):
            found = principal
    if found is None:
        logins.refuse_if_locked(None)
        logins.failed(None)
        return None
    return _authenticated(found)


@basic.get_user_roles
@bearer.get_user_roles
def roles_of(principal: Principal) -> list[str]:
    """A role includes every lower one."""
    return [role.label for role in Role if role <= principal.role]


def auth_error(status: int) -> Any:
    if status == 403:
        return error_response(403, "your role may not do this", {"required": g.get("required_role")})
    return error_response(401, "authentication required: basic auth or a bearer token")


# Registered apart, not stacked: stacked, the inner one's `WWW-Authenticate: Bearer` would answer basic clients too.
basic.error_handler(auth_error)
bearer.error_handler(auth_error)


def current_user() -> Principal:
    return multi.current_user()


def authorize() -> Any:
    """Runs before every request: only blueprints declared public skip it (health); registration ones take a
    registration token instead of a user's credentials."""
    access = access_of(current_app.blueprints.get(request.blueprint or ""))
    if access.public:
        return None
    if access.registration:
        registration_tokens.authenticate()
        return None
    role = access.role_for(request.method)
    g.required_role = role.label
    if request.method == "OPTIONS":
        return authorize_options(role)
    return multi.login_required(role=role.label)(lambda: None)()


def authorize_options(role: Role) -> Any:
    """What login_required does, which flask-httpauth skips for OPTIONS (CORS preflights; no browsers here)."""
    scheme = basic if basic.is_compatible_auth(request.headers) or not bearer.is_compatible_auth(request.headers) \
        else bearer
    auth = scheme.get_auth()
    user = scheme.authenticate(auth, scheme.get_auth_password(auth))
    if user in (None, False):
        return scheme.auth_error_callback(401)
    if not scheme.authorize(role.label, user, auth):
        return scheme.auth_error_callback(403)
    return None


def init_app(app: Flask, settings: Settings) -> None:
    app.extensions["wsexec_credentials"] = Credentials.from_settings(settings)
    app.before_request(authorize)


def main(argv: list[str] | None = None) -> int:
    """`wsexec-auth` (or `python -m wsexec.auth`): print what to put in WSEXEC_USERS / WSEXEC_TOKENS."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "hash":
        print(generate_password_hash(argv[1]))
        return 0
    if len(argv) == 3 and argv[0] == "token" and argv[2].upper() in Role.__members__:
        token = secrets.token_urlsafe(32)
        print(f"token (give it to the client):   {token}")
        digest = hashlib.sha256(token.encode()).hexdigest()
        print(f"entry (add it to WSEXEC_TOKENS): {argv[1]}:{argv[2].lower()}:{digest}")
        return 0
    print("usage: wsexec-auth hash PASSWORD | token NAME viewer|operator|admin", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())

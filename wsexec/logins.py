"""Password guessing costs the guesser, not everyone: failed logins are counted per client address and per user
name in Redis (so every gunicorn process and machine shares the counts) and checked BEFORE the expensive hash, so a
locked-out guesser costs nothing. A name guessed from many addresses is locked, but not for the addresses its
owner logged in from before. A name that does not exist is checked against a dummy hash of the same scheme,
so the time of a refusal does not tell which names exist."""

from __future__ import annotations

import functools
import secrets

from flask import request
from werkzeug.security import check_password_hash, generate_password_hash

from wsexec import context, offload
from wsexec.exceptions import TooManyRequests

DEFAULT_SCHEME = "scrypt"  # werkzeug's default, what `python -m wsexec.auth hash` writes
KNOWN_ADDRESS_SECONDS = 30 * 86400  # an address a user logged in from is spared that user name's lock this long


def refuse_if_locked(user: str | None) -> None:
    """429 with Retry-After while this address, or this user name (None for tokens), has failed too often."""
    settings = context.settings()
    seconds = context.store().limits.login_locked(
        _address(), user, settings.login_failures_per_address, settings.login_failures_per_user
    )
    if seconds:
        raise TooManyRequests(f"too many failed logins; try again in {seconds} s", seconds)


def succeeded(user: str) -> None:
    """A right password: from now on this address is not locked out by others guessing the same name."""
    context.store().limits.login_succeeded(_address(), user, KNOWN_ADDRESS_SECONDS)


def failed(user: str | None) -> None:
    """Count a refused password (for this address and name) or a refused token (for this address only)."""
    context.store().limits.login_failed(_address(), user, context.settings().login_window)


def hash_matches(stored_hash: str, password: str) -> bool:
    """The expensive check, in a real thread under gevent: known and unknown names both come through here."""
    return offload.blocking(check_password_hash, stored_hash, password)


def check_unknown_user(password: str, known_hashes: list[str]) -> bool:
    """What a wrong password for a real user costs (the scheme and cost of the first known hash), and False."""
    scheme = known_hashes[0].split("$", 1)[0] if known_hashes else DEFAULT_SCHEME
    hash_matches(dummy_hash(scheme), password)
    return False


@functools.cache
def dummy_hash(scheme: str) -> str:
    """A hash of a random password nobody knows, made with the scheme (and cost) of the configured hashes."""
    return generate_password_hash(secrets.token_urlsafe(16), scheme)


def _address() -> str:
    return request.remote_addr or "-"  # the client's address, behind nginx too (WSEXEC_TRUSTED_PROXIES)

"""Webhooks when tasks end, as pure functions (no Flask, no Redis): which end a webhook wants, which URLs may be
called, how a body is signed and when a failed delivery is tried again.

The outcomes a `notify: {url, on}` chooses from, one per end: DONE (state DONE, rc 0), FAILED (state DONE, rc != 0)
and ABORT (cancelled, timed out, unreachable host, worker lost). A receiver checks a delivery as verify() does:
HMAC-SHA256 over "<timestamp>.<body>" keyed with WSEXEC_WEBHOOK_SECRET, sent as `X-Wsexec-Signature: sha256=<hex>`
with `X-Wsexec-Timestamp` (unix seconds) and `X-Wsexec-Delivery` (the delivery's id, the same on every retry).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from wsexec.tasks import environment

OUTCOMES = ("DONE", "FAILED", "ABORT")
SIGNATURE_HEADER = "X-Wsexec-Signature"
TIMESTAMP_HEADER = "X-Wsexec-Timestamp"
DELIVERY_HEADER = "X-Wsexec-Delivery"
EVENT_HEADER = "X-Wsexec-Event"
URL_MAX = 2000


def outcome(state: str, rc: int | None) -> str:
    """DONE with rc 0 stays DONE, with another rc it is FAILED; ABORT is ABORT."""
    if state == "DONE" and rc not in (0, None):
        return "FAILED"
    return state


def batch_outcome(outcomes: Iterable[str]) -> str:
    """A batch is ABORT if one of its tasks was, else FAILED if one failed, else DONE."""
    found = set(outcomes)
    return next((o for o in ("ABORT", "FAILED") if o in found), "DONE")


def allow_list(raw: str) -> list[str]:
    """WSEXEC_WEBHOOK_ALLOW: URL prefixes separated by spaces."""
    return raw.split()


def url_refused(url: str, allowed: list[str]) -> str | None:
    """Why a webhook may not call `url` (None if it may): http(s), no credentials, and under an allowed prefix.

    A prefix matches at a boundary: "https://hooks.example.com/ci" allows ".../ci" and ".../ci/x", not ".../cid" nor
    "https://hooks.example.com.evil.net"; the scheme and host compare without case. An empty list refuses all.
    """
    if not allowed:
        return "webhooks are off: WSEXEC_WEBHOOK_ALLOW lists no URL prefix"
    if len(url) > URL_MAX:
        return f"longer than {URL_MAX} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not allowed"
    if any(ord(c) < 33 for c in url):
        return "spaces or control characters in the URL"
    for prefix in allowed:
        if _under(url, prefix):
            return None
    return f"not under an allowed prefix of WSEXEC_WEBHOOK_ALLOW ({' '.join(allowed)})"


def _under(url: str, prefix: str) -> bool:
    head, prefix_head = urlsplit(url), urlsplit(prefix)
    if (head.scheme, head.netloc.lower()) != (prefix_head.scheme.lower(), prefix_head.netloc.lower()):
        return False
    path, want = head.path or "/", prefix_head.path or "/"
    return path == want or path.startswith(want if want.endswith("/") else want + "/")


def global_hooks(raw: str) -> list[dict[str, Any]]:
    """WSEXEC_WEBHOOKS: a JSON array of {"url": ..., "on": [...]} for every task; ValueError if malformed."""
    if not raw.strip():
        return []
    hooks = json.loads(raw)
    if not isinstance(hooks, list):
        raise ValueError("not a JSON array of {\"url\": ..., \"on\": [...]}")
    for hook in hooks:
        if not isinstance(hook, dict) or not isinstance(hook.get("url"), str) or not isinstance(hook.get("on"), list) \
                or not hook["on"] or not set(hook["on"]) <= set(OUTCOMES):
            raise ValueError(f"{hook!r}: each needs a url and an \"on\" list of {', '.join(OUTCOMES)}")
    return hooks


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Wsexec-Signature value: sha256=<hex of HMAC-SHA256 over b"<timestamp>." + body>."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (constant-time compare); it should also refuse a timestamp far from its clock."""
    try:
        expected = sign(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, signature)


def backoff(attempts: int, base: float) -> float:
    """Seconds before the next try after `attempts` failed ones: base, 2 base, 4 base..."""
    return float(base * 2 ** max(attempts - 1, 0))


def task_summary(task: dict[str, Any]) -> dict[str, Any]:
    """The task's fields a webhook body carries (not its output, nor its env's values: its env_names)."""
    names = ("id", "name", "tag", "instance", "state", "rc", "error", "start", "end", "batch", "schedule",
             "fire_time", "created_by", "kind", "run_as")
    summary = {name: task[name] for name in names if name in task}
    return summary | ({"env_names": shown} if (shown := environment.shown_names(task)) else {})

"""wsexec.accesslog.escape: nothing a client sends can start a log line or reach a terminal as a control code."""

from __future__ import annotations

import pytest

from wsexec.accesslog import escape, redact


@pytest.mark.parametrize(("raw", "logged"), [
    ("alice", "alice"),
    ("héllo ✓", "héllo ✓"),
    ('say "hi"', 'say "hi"'),  # gunicorn's SafeAtoms escapes the quotes
    ("a\nb", "a\\x0ab"),
    ("\r\x1b[2J\x07", "\\x0d\\x1b[2J\\x07"),
    ("back\\slash", "back\\\\slash"),
    ("\u2028\u202e", "\\u2028\\u202e"),  # line separator, right-to-left override
    ("\U000e0001", "\\U000e0001"),
])
def test_escape(raw: str, logged: str) -> None:
    assert escape(raw) == logged


@pytest.mark.parametrize(("raw", "logged"), [
    ("GET /wsexec/websh/sessions/3/connect?ticket=Ab-_9x HTTP/1.1",
     "GET /wsexec/websh/sessions/3/connect?ticket=REDACTED HTTP/1.1"),
    ("page=2&ticket=s3cret&x=1", "page=2&ticket=REDACTED&x=1"),
    ("GET /wsexec/tasks?page=2 HTTP/1.1", "GET /wsexec/tasks?page=2 HTTP/1.1"),
])
def test_websh_tickets_are_never_logged(raw: str, logged: str) -> None:
    assert redact(raw) == logged

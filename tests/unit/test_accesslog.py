"""wsexec.accesslog.escape: nothing a client sends can start a log line or reach a terminal as a control code."""

from __future__ import annotations

import pytest

from wsexec.accesslog import escape


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

"""wsexec.accesslog: nothing a client sends can start a log line or reach a terminal as a control code, and a line
has the fields gunicorn's own atoms would give it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from wsexec.accesslog import AccessLogger, escape, names, redact


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


class _Request:
    headers = [("HOST", "wsexec.example.com"), ("USER-AGENT", 'curl "8"\x1b[2J'), ("X-FORWARDED-FOR", "10.0.0.1"),
               ("X-FORWARDED-FOR", "10.0.0.2")]


class _Response:
    status, sent = "404 NOT FOUND", 57
    headers = [("Content-Type", "application/json"), ("Content-Length", "57")]


ENVIRON = {"REQUEST_METHOD": "GET", "RAW_URI": "/wsexec/websh/sessions/3/connect?ticket=s3cret",
           "PATH_INFO": "/wsexec/websh/sessions/3/connect", "QUERY_STRING": "ticket=s3cret",
           "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_REFERER": "a\\\" \"b",
           "HTTP_USER_AGENT": 'curl "8"\x1b[2J', "wsexec.user": "ali\nce", "wsgi.url_scheme": "https"}
FORMATS = [
    Config().access_log_format,  # gunicorn's default, the one gunicorn.conf.py keeps
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s %(B)s %(m)s %(U)s %(q)s %(H)s %(T)s %(D)s %(M)s %(L)s %(p)s',
    '%({X-Forwarded-For}i)s %({content-type}o)s %({wsgi.url_scheme}e)s %({absent}i)s %(nope)s 100%%',
]


@pytest.mark.parametrize("log_format", FORMATS)
def test_a_line_has_the_fields_gunicorn_would_log_escaped(log_format: str) -> None:
    """Only the named atoms are made, and each as gunicorn's atoms() + SafeAtoms make it, then escaped and redacted."""
    cfg = Config()
    cfg.set("access_log_format", log_format)
    logger, took = AccessLogger(cfg), timedelta(seconds=1, microseconds=2345)
    reference = Logger.atoms(logger, _Response(), _Request(), ENVIRON, took)
    reference = {key: escape(redact(value) if key in ("r", "q") else value) if isinstance(value, str) else value
                 for key, value in reference.items()}
    line = log_format % logger.line_atoms(names(log_format), _Response(), _Request(), ENVIRON, took)
    assert line == log_format % SafeAtoms(reference)
    assert "\n" not in line and "\x1b" not in line and "s3cret" not in line


def test_the_logged_line_reaches_the_access_log(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = Config()
    cfg.set("accesslog", "-")  # as gunicorn.conf.py: stdout
    AccessLogger(cfg).access(_Response(), _Request(), ENVIRON, timedelta(microseconds=5))
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("127.0.0.1 - ali\\x0ace [")
    assert '"GET /wsexec/websh/sessions/3/connect?ticket=REDACTED HTTP/1.1" 404 57 "a\\\\\\" \\"b"' in line

"""wsexec.notify without servers: signatures, the allow-list check, outcomes, backoff and WSEXEC_WEBHOOKS."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from wsexec import notify
from wsexec.config import Settings

ALLOWED = ["https://hooks.example.com/ci", "http://127.0.0.1:9000/"]


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"event":"task.finished"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert notify.sign("k", 1700000000, body) == f"sha256={expected}"
    assert notify.verify("k", "1700000000", body, f"sha256={expected}")


@pytest.mark.parametrize("secret, timestamp, body", [
    ("other", "1700000000", b"{}"), ("k", "1700000001", b"{}"), ("k", "1700000000", b"{ }"), ("k", "soon", b"{}"),
])
def test_a_signature_verifies_only_for_its_secret_timestamp_and_body(secret: str, timestamp: str, body: bytes) -> None:
    assert not notify.verify(secret, timestamp, body, notify.sign("k", 1700000000, b"{}"))


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/ci", "https://hooks.example.com/ci/", "https://hooks.example.com/ci/x?y=1",
    "https://HOOKS.example.com/ci", "http://127.0.0.1:9000/", "http://127.0.0.1:9000/anything",
    "http://127.0.0.1:9000",
])
def test_allowed_urls(url: str) -> None:
    assert notify.url_refused(url, ALLOWED) is None


@pytest.mark.parametrize("url, why", [
    ("https://hooks.example.com/cid", "not under an allowed prefix"),
    ("https://hooks.example.com/", "not under an allowed prefix"),
    ("http://hooks.example.com/ci", "not under an allowed prefix"),  # scheme differs
    ("https://hooks.example.com.evil.net/ci", "not under an allowed prefix"),
    ("https://hooks.example.com:8443/ci", "not under an allowed prefix"),
    ("http://127.0.0.1:9001/", "not under an allowed prefix"),
    ("http://169.254.169.254/latest/meta-data", "not under an allowed prefix"),
    ("https://me:pw@hooks.example.com/ci", "credentials"),
    ("ftp://hooks.example.com/ci", "not an http"),
    ("hooks.example.com/ci", "not an http"),
    ("http://127.0.0.1:99999/", "not a URL"),
    ("https://hooks.example.com/ci/a b", "spaces or control"),
    ("https://hooks.example.com/ci/" + "x" * notify.URL_MAX, "longer than"),
])
def test_refused_urls_say_why(url: str, why: str) -> None:
    refused = notify.url_refused(url, ALLOWED)
    assert refused is not None and why in refused


def test_an_empty_allow_list_refuses_everything() -> None:
    refused = notify.url_refused("http://127.0.0.1/", notify.allow_list(""))
    assert refused is not None and "WSEXEC_WEBHOOK_ALLOW" in refused


@pytest.mark.parametrize("state, rc, outcome", [("DONE", 0, "DONE"), ("DONE", 1, "FAILED"), ("DONE", -1, "FAILED"),
                                                ("ABORT", None, "ABORT")])
def test_outcomes(state: str, rc: int | None, outcome: str) -> None:
    assert notify.outcome(state, rc) == outcome


def test_a_batch_outcome_is_its_worst() -> None:
    assert notify.batch_outcome(["DONE", "DONE"]) == "DONE"
    assert notify.batch_outcome(["DONE", "FAILED"]) == "FAILED"
    assert notify.batch_outcome(["FAILED", "ABORT", "DONE"]) == "ABORT"


def test_backoff_doubles() -> None:
    assert [notify.backoff(n, 2.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]


def test_global_webhooks_are_checked_when_the_settings_are_read() -> None:
    hooks = '[{"url": "https://hooks.example.com/ci", "on": ["FAILED", "ABORT"]}]'
    assert notify.global_hooks(hooks) == [{"url": "https://hooks.example.com/ci", "on": ["FAILED", "ABORT"]}]
    assert Settings.from_env({"WSEXEC_WEBHOOKS": hooks}).webhooks == hooks
    for bad in ('{"url": "x"}', '[{"url": "x", "on": ["SOMETIMES"]}]', '[{"url": "x", "on": []}]', "[1]", "nope"):
        with pytest.raises(ValueError, match="WSEXEC_WEBHOOKS"):
            Settings(webhooks=bad)


def test_the_secret_stays_out_of_the_settings_repr() -> None:
    assert "s3cr3t-value" not in repr(Settings(webhook_secret="s3cr3t-value"))

"""Failed logins: 429 with Retry-After per client address and per user name, counted in Redis before any hashing;
unknown names pay for a hash like wrong passwords do."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from tests.helpers import CRON_TOKEN, PASSWORDS, wait_for
from wsexec import create_app, logins
from wsexec.config import Settings

PER_ADDRESS, PER_USER = 3, 5
GUESSER, OTHER = "10.0.0.66", "10.0.0.7"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, login_failures_per_address=PER_ADDRESS, login_failures_per_user=PER_USER,
                               login_window=60)


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


def get(client: FlaskClient, address: str, user: str = "admin", password: str = "wrong", **kwargs: Any) -> Any:
    return client.get("/wsexec/tasks", auth=(user, password), environ_base={"REMOTE_ADDR": address}, **kwargs)


def assert_locked(response: Any, window: int = 60) -> None:
    assert response.status_code == 429, response.json
    assert 0 < int(response.headers["Retry-After"]) <= window
    assert response.json == {"error": f"too many failed logins; try again in {response.headers['Retry-After']} s",
                             "detail": {"retry_after": int(response.headers["Retry-After"])}}


@pytest.fixture
def hash_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The hashes every password check compares against, in order (the real check still runs)."""
    seen: list[str] = []
    real = logins.hash_matches

    def spy(stored_hash: str, password: str) -> bool:
        seen.append(stored_hash)
        return real(stored_hash, password)

    monkeypatch.setattr(logins, "hash_matches", spy)
    return seen


def test_an_address_is_locked_after_its_failures_even_with_the_right_password(client: FlaskClient) -> None:
    for _ in range(PER_ADDRESS):
        assert get(client, GUESSER).status_code == 401
    assert_locked(get(client, GUESSER))
    assert_locked(get(client, GUESSER, password=PASSWORDS["admin"]))


def test_the_right_password_from_another_address_works_while_one_is_locked(client: FlaskClient) -> None:
    for _ in range(PER_ADDRESS + 2):
        get(client, GUESSER)
    assert_locked(get(client, GUESSER, password=PASSWORDS["admin"]))
    assert get(client, OTHER, password=PASSWORDS["admin"]).status_code == 200


def test_a_name_guessed_from_many_addresses_is_locked_everywhere(client: FlaskClient) -> None:
    for n in range(PER_USER):
        assert get(client, f"10.1.0.{n}").status_code == 401  # each address stays under its own limit
    assert_locked(get(client, OTHER, password=PASSWORDS["admin"]))
    assert get(client, OTHER, user="viewer", password=PASSWORDS["viewer"]).status_code == 200


def test_a_guessed_name_does_not_lock_its_owner_out_of_addresses_it_used(client: FlaskClient) -> None:
    home = "10.2.0.1"
    assert get(client, home, password=PASSWORDS["admin"]).status_code == 200
    for n in range(PER_USER):
        get(client, f"10.1.0.{n}")
    assert_locked(get(client, OTHER, password=PASSWORDS["admin"]))  # a new address: the name's lock holds
    assert get(client, home, password=PASSWORDS["admin"]).status_code == 200
    for _ in range(PER_ADDRESS):
        assert get(client, home).status_code == 401  # its own failures still count for the address
    assert_locked(get(client, home, password=PASSWORDS["admin"]))


def test_a_locked_out_guesser_costs_no_hashing(client: FlaskClient, hash_checks: list[str]) -> None:
    for _ in range(PER_ADDRESS):
        get(client, GUESSER)
    assert len(hash_checks) == PER_ADDRESS
    for _ in range(20):
        assert get(client, GUESSER).status_code == 429
    assert len(hash_checks) == PER_ADDRESS


def test_unknown_names_are_checked_against_a_dummy_hash_of_the_same_scheme(
    client: FlaskClient, hash_checks: list[str], password_hashes: dict[str, str]
) -> None:
    assert get(client, OTHER, user="admin").status_code == 401
    assert get(client, OTHER, user="nobody").status_code == 401
    known, unknown = hash_checks
    assert known == password_hashes["admin"]
    assert unknown == logins.dummy_hash(known.split("$")[0]) and unknown not in password_hashes.values()
    assert get(client, OTHER, user="nobody", password="").status_code == 401  # an empty password is hashed too
    assert len(hash_checks) == 3


def test_unknown_names_count_as_failures(client: FlaskClient) -> None:
    for n in range(PER_ADDRESS):
        assert get(client, GUESSER, user=f"guess{n}").status_code == 401
    assert_locked(get(client, GUESSER, user="viewer", password=PASSWORDS["viewer"]))


def test_bad_tokens_count_for_the_address(client: FlaskClient) -> None:
    bad = {"Authorization": "Bearer not-a-token"}
    for _ in range(PER_ADDRESS):
        assert client.get("/wsexec/tasks", headers=bad, environ_base={"REMOTE_ADDR": GUESSER}).status_code == 401
    assert_locked(client.get("/wsexec/tasks", headers=bad, environ_base={"REMOTE_ADDR": GUESSER}))
    good = {"Authorization": f"Bearer {CRON_TOKEN}"}
    assert client.get("/wsexec/tasks", headers=good, environ_base={"REMOTE_ADDR": OTHER}).status_code == 200


def test_a_right_token_is_not_locked_out_by_guessing_from_its_address(client: FlaskClient) -> None:
    """Tokens are 256 random bits: the lock stops guessers (they still get 429), never a token's owner on a NAT."""
    for _ in range(PER_ADDRESS):
        assert get(client, GUESSER).status_code == 401
    assert_locked(client.get("/wsexec/tasks", headers={"Authorization": "Bearer not-a-token"},
                             environ_base={"REMOTE_ADDR": GUESSER}))
    good = {"Authorization": f"Bearer {CRON_TOKEN}"}
    assert client.get("/wsexec/tasks", headers=good, environ_base={"REMOTE_ADDR": GUESSER}).status_code == 200
    assert_locked(get(client, GUESSER, password=PASSWORDS["admin"]))  # passwords stay locked


def test_requests_without_credentials_are_not_failures(client: FlaskClient, hash_checks: list[str]) -> None:
    for _ in range(PER_ADDRESS * 3):
        assert client.get("/wsexec/tasks", environ_base={"REMOTE_ADDR": GUESSER}).status_code == 401
    assert hash_checks == []
    assert get(client, GUESSER, password=PASSWORDS["admin"]).status_code == 200


def test_the_window_ends(settings: Settings, redis: Any) -> None:
    client = create_app(dataclasses.replace(settings, login_window=1)).test_client()
    for _ in range(PER_ADDRESS):
        get(client, GUESSER)
    assert_locked(get(client, GUESSER), window=1)
    wait_for(lambda: get(client, GUESSER, password=PASSWORDS["admin"]).status_code == 200, timeout=5)


def test_every_gunicorn_process_shares_the_counts(gunicorn_url: str) -> None:
    """New connections (so both gunicorn workers take some): the lock holds across processes."""
    for _ in range(PER_ADDRESS):
        assert requests.get(f"{gunicorn_url}/wsexec/tasks", auth=("admin", "wrong"), timeout=10).status_code == 401
    for _ in range(6):
        response = requests.get(f"{gunicorn_url}/wsexec/tasks", auth=("admin", PASSWORDS["admin"]), timeout=10,
                                headers={"Connection": "close"})
        assert response.status_code == 429 and response.headers["Retry-After"]

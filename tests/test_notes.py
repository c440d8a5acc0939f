"""/wsexec/notes as curl sessions: alpacon's rules on who sees and changes a note, its order, and that it goes
with its instance."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from werkzeug.security import generate_password_hash

from tests.helpers import Api
from wsexec.config import Settings
from wsexec.store.records import NOTE

OTHER, OTHER_PASSWORD = "carol", "carol-pw"  # a second operator, who did not write the notes
INSTANCE = {"ip": "127.0.0.1", "tag": "web", "user": "nobody"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    other = f"{OTHER}:operator:{generate_password_hash(OTHER_PASSWORD, 'pbkdf2:sha256:1')}"
    return dataclasses.replace(settings, users=f"{settings.users} {other}")


def as_who(api: Api, who: str) -> Api:
    """author (the operator who writes the notes), other (another operator), viewer or admin."""
    if who == "other":
        other = api.as_user("operator")
        other.auth = (OTHER, OTHER_PASSWORD)
        return other
    return api.as_user("operator" if who == "author" else who)


@pytest.fixture
def servers(api: Api) -> list[dict[str, Any]]:
    return [api.created("/instances", {**INSTANCE, "ip": f"127.0.0.{n}"}) for n in (1, 2)]


def note(api: Api, instance: int = 1, content: str = "disk replaced", **fields: Any) -> dict[str, Any]:
    return as_who(api, "author").created("/notes", {"instance": instance, "content": content, **fields})


def ids(listing: Any) -> list[int]:
    return [item["id"] for item in listing.json["results"]]


def test_a_note_as_written(api: Api, servers: list[dict[str, Any]]) -> None:
    written = note(api, content="kernel 6.1 pinned on purpose", pinned=True)
    assert written == {"id": 1, "instance": 1, "author": "operator", "content": "kernel 6.1 pinned on purpose",
                       "private": False, "pinned": True, "created_at": written["created_at"],
                       "updated_at": written["created_at"]}
    assert api.get("/notes/1").json == written


def test_any_authenticated_user_may_write_one(api: Api, servers: list[dict[str, Any]]) -> None:
    created = api.as_user("viewer").created("/notes", {"instance": 2, "content": "seen from the dashboard"})
    assert created["author"] == "viewer" and created["private"] is False and created["pinned"] is False
    assert api.post("/notes", json={"instance": 2, "content": "x"}, auth=None).status_code == 401


MATRIX = [  # (private, who, method, status): alpacon's rules, note written by "author"
    *[(False, who, "get", 200) for who in ("author", "other", "viewer", "admin")],
    *[(False, who, method, status) for method in ("patch", "delete")
      for who, status in (("author", 200), ("other", 403), ("viewer", 403), ("admin", 200))],
    *[(True, who, method, status) for method in ("get", "patch", "delete")
      for who, status in (("author", 200), ("other", 404), ("viewer", 404), ("admin", 404))],
]


@pytest.mark.parametrize(("private", "who", "method", "status"), MATRIX)
def test_who_may_see_and_change_a_note(api: Api, servers: list[dict[str, Any]], private: bool, who: str,
                                       method: str, status: int) -> None:
    written = note(api, private=private)
    before = as_who(api, "author").get("/notes/1").json
    response = getattr(as_who(api, who), method)("/notes/1", json={"content": "changed"} if method == "patch" else None)
    expected = 204 if method == "delete" and status == 200 else status
    assert response.status_code == expected, response.json
    after = as_who(api, "author").get("/notes/1")
    if status != 200:
        assert set(response.json) == {"error", "detail"}
        assert after.json == before  # nothing changed, nothing removed
    elif method == "patch":
        assert after.json["content"] == "changed" and after.json["updated_at"] > written["updated_at"]
    elif method == "delete":
        assert after.status_code == 404


@pytest.mark.parametrize("who", ["author", "other", "viewer", "admin"])
def test_lists_show_private_notes_to_their_author_only(api: Api, servers: list[dict[str, Any]], who: str) -> None:
    public, private = note(api), note(api, private=True)
    other_private = as_who(api, "other").created("/notes", {"instance": 1, "content": "mine", "private": True})
    expected = {"author": [private["id"], public["id"]], "other": [other_private["id"], public["id"]]}
    for path in ("/notes?instance=1", "/notes"):
        listing = as_who(api, who).get(path)
        assert listing.status_code == 200
        assert ids(listing) == expected.get(who, [public["id"]])
        assert listing.json["count"] == len(ids(listing))


def test_pinned_first_then_the_last_updated(api: Api, servers: list[dict[str, Any]]) -> None:
    first, second, third = (note(api, content=c)["id"] for c in ("first", "second", "third"))
    note(api, instance=2, content="elsewhere")
    assert ids(api.get("/notes?instance=1")) == [third, second, first]
    assert as_who(api, "author").patch(f"/notes/{first}", json={"pinned": True}).status_code == 200
    assert as_who(api, "author").patch(f"/notes/{second}", json={"content": "second, edited"}).status_code == 200
    assert ids(api.get("/notes?instance=1")) == [first, second, third]
    assert ids(api.get("/notes?instance=2")) == [4]


def test_paginated_like_every_list(api: Api, servers: list[dict[str, Any]]) -> None:
    for n in range(5):
        note(api, content=f"note {n}")
    page = api.get("/notes?instance=1&page=2&page_size=2").json
    assert page["count"] == 5 and [n["content"] for n in page["results"]] == ["note 2", "note 1"]
    assert page["next"].endswith("page=3&page_size=2") and page["previous"].endswith("page=1&page_size=2")


@pytest.mark.parametrize(("content", "status"), [("x" * 512, 201), ("\u00e9" * 512, 201), ("x" * 513, 422),
                                                 ("", 422), (None, 422)],
                         ids=["512", "512-non-ascii", "513", "empty", "null"])
def test_content_is_1_to_512_characters(api: Api, servers: list[dict[str, Any]], content: Any, status: int) -> None:
    response = api.post("/notes", json={"instance": 1, "content": content})
    assert response.status_code == status, response.json
    if status == 422:
        assert "content" in response.json["detail"]
    assert api.get("/notes").json["count"] == (1 if status == 201 else 0)


def test_a_longer_edit_is_refused(api: Api, servers: list[dict[str, Any]]) -> None:
    note(api)
    response = as_who(api, "author").patch("/notes/1", json={"content": "x" * 513})
    assert response.status_code == 422 and "content" in response.json["detail"]
    assert api.get("/notes/1").json["content"] == "disk replaced"


def test_the_instance_of_a_note_cannot_change(api: Api, servers: list[dict[str, Any]]) -> None:
    note(api)
    response = as_who(api, "author").patch("/notes/1", json={"instance": 2, "content": "moved"})
    assert response.status_code == 422
    assert response.json["detail"] == {"instance": ["a note's instance cannot change: create a new note there"]}
    assert api.get("/notes/1").json["instance"] == 1 and api.get("/notes/1").json["content"] == "disk replaced"


def test_an_unknown_instance_is_422(api: Api, servers: list[dict[str, Any]]) -> None:
    response = api.post("/notes", json={"instance": 3, "content": "x"})
    assert response.status_code == 422
    assert response.json == {"error": "instance: instance 3 does not exist",
                             "detail": {"instance": ["instance 3 does not exist"]}}
    assert api.get("/notes").json["count"] == 0


def test_deleting_an_instance_deletes_its_notes(api: Api, servers: list[dict[str, Any]], redis: Redis) -> None:
    gone = [note(api)["id"], note(api, private=True)["id"]]
    gone.append(api.created("/notes", {"instance": 1, "content": "the admin's"})["id"])
    kept = note(api, instance=2)["id"]
    assert api.delete("/instances/1").status_code == 204
    for note_id in gone:
        assert api.get(f"/notes/{note_id}").status_code == 404
        assert not redis.exists(NOTE.key(note_id))
    assert not redis.exists(NOTE.index_key("instance", 1))
    assert [int(i) for i in redis.zrange(NOTE.all_key, 0, -1)] == [kept]
    assert [int(i) for i in redis.zrange(NOTE.index_key("instance", 2), 0, -1)] == [kept]
    assert ids(api.get("/notes")) == [kept]
    assert api.post("/notes", json={"instance": 1, "content": "too late"}).status_code == 422


def test_an_instance_that_may_not_be_deleted_keeps_its_notes(api: Api, servers: list[dict[str, Any]]) -> None:
    note(api)
    assert api.post("/tasks", json={"name": "n", "tag": "t", "instance": 1, "script": "true"}).status_code == 201
    assert api.delete("/instances/1").status_code == 409
    assert api.get("/notes/1").status_code == 200


def test_concurrent_edits_keep_every_field(app: Flask, api: Api, servers: list[dict[str, Any]]) -> None:
    """Each PATCH writes only its own fields, atomically: none undoes another's."""
    for n in range(10):
        note(api, content=f"note {n}")
    author = as_who(api, "author")
    changes = [(note_id, body) for note_id in range(1, 11)
               for body in ({"content": f"edited {note_id}"}, {"pinned": True}, {"private": True})]

    def patch(change: tuple[int, dict[str, Any]]) -> int:
        return author.client.application.test_client().patch(
            f"/wsexec/notes/{change[0]}", json=change[1], auth=author.auth).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(patch, changes)) == {200}
    for note_id in range(1, 11):
        found = author.get(f"/notes/{note_id}").json
        assert (found["content"], found["pinned"], found["private"]) == (f"edited {note_id}", True, True)


def test_changes_are_audited_without_private_content(api: Api, servers: list[dict[str, Any]]) -> None:
    public, private = note(api, content="public words"), note(api, content="secret words", private=True)
    author = as_who(api, "author")
    assert author.patch(f"/notes/{public['id']}", json={"pinned": True, "content": "more public words"}).status_code \
        == 200
    assert author.patch(f"/notes/{private['id']}", json={"content": "more secret words"}).status_code == 200
    assert author.patch(f"/notes/{private['id']}", json={"private": False}).status_code == 200
    assert api.delete(f"/notes/{public['id']}").status_code == 204
    entries = [(e["action"], e["target"], e["user"], e["detail"]) for e in api.get("/audit?page_size=100").json[
        "results"] if e["action"].startswith("note.")]
    assert entries == [
        ("note.delete", "note:1", "admin", {"instance": 1}),
        ("note.update", "note:2", "operator", {"private": False, "instance": 1}),
        ("note.update", "note:2", "operator", {"instance": 1}),
        ("note.update", "note:1", "operator", {"pinned": True, "content": "more public words", "instance": 1}),
        ("note.create", "note:2", "operator", {"private": True, "pinned": False, "instance": 1}),
        ("note.create", "note:1", "operator", {"content": "public words", "private": False, "pinned": False,
                                               "instance": 1}),
    ]
    assert "secret" not in str(api.get("/audit?page_size=100").json)


def test_an_empty_patch_changes_nothing(api: Api, servers: list[dict[str, Any]]) -> None:
    """Not even updated_at: the note keeps its place in the list."""
    written = note(api)
    assert as_who(api, "author").patch("/notes/1", json={}).json == written

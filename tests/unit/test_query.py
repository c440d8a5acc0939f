"""wsexec.query: the app's query strings answer get() as werkzeug's do, without raising for absent keys."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import BadRequestKeyError

from wsexec.query import Parameters, WsexecRequest


@pytest.mark.parametrize(("key", "default", "convert"), [
    ("wait", None, None), ("absent", "fallback", None), ("wait", None, int), ("name", 0, int), ("tag", None, None),
])
def test_get_answers_as_werkzeug_does(key: str, default: object, convert: object) -> None:
    pairs = [("wait", "30"), ("name", "not-a-number"), ("tag", "a"), ("tag", "b")]
    ours, theirs = Parameters(pairs), ImmutableMultiDict(pairs)
    assert ours.get(key, default, convert) == theirs.get(key, default, convert)  # type: ignore[call-overload]


def test_an_absent_key_raises_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def built(*args: object, **kwargs: object) -> None:
        raise AssertionError("a BadRequestKeyError was built")

    monkeypatch.setattr(BadRequestKeyError, "__init__", built)
    assert Parameters([("wait", "1")]).get("absent", 7) == 7
    with pytest.raises(AssertionError):
        ImmutableMultiDict([("wait", "1")]).get("absent", 7)


def test_the_app_reads_its_query_strings_with_it() -> None:
    request = WsexecRequest.from_values("/wsexec/tasks?page=2&tag=a&tag=b")
    assert isinstance(request.args, Parameters)
    assert request.args.get("page", type=int) == 2 and request.args.getlist("tag") == ["a", "b"]
    assert request.args["page"] == "2"

"""The HTTP side of the CLI: one session, JSON in and out, every failure as one line (ApiError), SSE reading."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import click
import requests

from wsexec.cli.config import Credentials
from wsexec.cli.outcome import CLIENT_ERROR

TIMEOUT = 30.0  # seconds for a plain request; waits add theirs


class ApiError(click.ClickException):
    """Exits with EXIT_CLIENT and one line on stderr: the status and the server's error, or why it could not ask."""

    exit_code = CLIENT_ERROR


class StreamBroken(ApiError):
    """An event stream that ended before its end: the caller may resume it with the last event id."""


class StreamBusy(StreamBroken):
    """A 503 to a stream: every stream slot of that web process is taken (or Redis is away); worth trying again."""


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event: its name, id (or None) and data (lines joined by \\n)."""

    name: str
    id: str | None
    data: str


def error_line(response: requests.Response) -> str:
    """'401 Unauthorized: bad credentials' from the API's {"error", "detail"} body (or the status alone)."""
    head = f"{response.status_code} {response.reason}"
    try:
        body = response.json()
    except ValueError:
        return head
    if not isinstance(body, dict) or "error" not in body:
        return head
    line = f"{head}: {body['error']}"
    detail = flatten(body.get("detail") or "")
    return f"{line} ({detail})" if detail and detail not in line else line  # not when it repeats the error


def flatten(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(flatten(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {flatten(item)}" for key, item in value.items())
    return str(value)


def sse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Events from the lines of a text/event-stream (comments and retry: skipped)."""
    name, event_id, data = "message", None, list[str]()
    for line in lines:
        if line == "":
            if data:
                yield Event(name, event_id, "\n".join(data))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value


class Client:
    def __init__(self, credentials: Credentials) -> None:
        self.url = credentials.url
        self.session = requests.Session()
        if credentials.token:
            self.session.headers["Authorization"] = f"Bearer {credentials.token}"
        elif credentials.user:
            self.session.auth = (credentials.user, credentials.password or "")

    def send(self, method: str, path: str, *, wait: float = 0, stream: bool = False,
             **options: Any) -> requests.Response:
        """The response of a 2xx answer; anything else raises ApiError with one line."""
        url = f"{self.url}/wsexec{path}"
        try:
            response = self.session.request(method, url, timeout=(10, TIMEOUT + wait), stream=stream, **options)
        except requests.ConnectionError as exc:
            refused = "refused" in str(exc).lower()
            why = "connection refused: is wsexec running there?" if refused else f"cannot connect ({reason(exc)})"
            raise ApiError(f"{self.url}: {why} Set the server with --url or WSEXEC_URL.") from None
        except requests.Timeout:
            raise ApiError(f"{self.url}: no answer in time ({method} {path})") from None
        except requests.RequestException as exc:
            raise ApiError(f"{self.url}: {reason(exc)}") from None
        if response.status_code == 503 and stream:
            raise StreamBusy(f"{method} {path}: {error_line(response)}")
        if response.status_code >= 400:
            hint = " (check --user/--token, WSEXEC_USER/WSEXEC_PASSWORD or WSEXEC_TOKEN)" \
                if response.status_code == 401 else ""
            raise ApiError(f"{method} {path}: {error_line(response)}{hint}")
        return response

    def json(self, method: str, path: str, **options: Any) -> Any:
        response = self.send(method, path, **options)
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        wait = params.get("wait") or 0
        return self.json("GET", path, params={k: v for k, v in params.items() if v is not None}, wait=wait)

    def stream(self, path: str, params: dict[str, Any], last_event_id: str | None = None) -> Iterator[Event]:
        """The events of an SSE endpoint until the server ends the stream."""
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        response = self.send("GET", path, params=params, headers=headers, stream=True, wait=3600 * 24)
        with response:
            try:
                yield from sse_events(lines(response.iter_content(chunk_size=None)))
            except requests.RequestException as exc:
                raise StreamBroken(f"{self.url}: the stream broke ({reason(exc)})") from None


def lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Lines as soon as each arrives (requests' iter_lines waits for 512 bytes and splits on more than \\n)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            yield line.removesuffix("\r")
    if pending:
        yield pending


def reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, short."""
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    return str(exc).split(": ", 1)[-1][:200] or type(exc).__name__

"""requests helpers for the tests and the benchmark (requests is a development dependency, so only they import this)."""

from __future__ import annotations

from typing import Any

from requests.adapters import HTTPAdapter


class FromAddress(HTTPAdapter):
    """Connect from a given loopback address: a client other than nginx's 127.0.0.1, or one of many guessers."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, source_address=(self.source, 0), **kwargs)

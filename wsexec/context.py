"""Accessors for what create_app attached to the current app."""

from __future__ import annotations

from flask import current_app
from rq import Queue

from wsexec.config import Settings
from wsexec.sse import StreamSlots
from wsexec.store import Store


def settings() -> Settings:
    return current_app.extensions["wsexec"]


def store() -> Store:
    return current_app.extensions["wsexec_store"]


def queue() -> Queue:
    return current_app.extensions["wsexec_queue"]


def streams() -> StreamSlots:
    return current_app.extensions["wsexec_streams"]

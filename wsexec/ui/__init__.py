"""GET /wsexec/ui/: the web console, static files shipped in the package (no build step, no CDN).

The files are public, as /health is: they are the same code for everyone and hold no data, and they must be: a
page the browser fetched with basic auth would make it send those credentials by itself on every later request
(ambient credentials, the CSRF hole). The console instead keeps what the user typed in sessionStorage and puts it
in the Authorization header of each API call it makes with fetch(); every API route still asks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import send_from_directory

from wsexec.blueprint import Blueprint

STATIC = Path(__file__).resolve().parent / "static"

blp = Blueprint("ui", __name__, public=True, description="The web console's static files")


@blp.route("/")
def index() -> Any:
    """The console's one page; its scripts route by the URL's #fragment."""
    return send_from_directory(STATIC, "index.html", max_age=0)


@blp.route("/<path:name>")
def asset(name: str) -> Any:
    """A script, style sheet or vendored library (send_from_directory refuses paths that leave STATIC: 404)."""
    return send_from_directory(STATIC, name, max_age=0)

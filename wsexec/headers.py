"""Security headers on every answer: the console's pages may run only their own files, and nothing may frame them.

The API's JSON gets a policy that allows nothing at all (it is never meant to be rendered); the console's files get
one that allows scripts, styles, fonts and connections to this origin only ('self' covers ws:/wss: to it, for the
terminals' websockets). Styles also allow 'unsafe-inline': xterm.js sizes its grid with a <style> element it
writes at run time; a style cannot run code, and inline *scripts* stay forbidden.
"""

from __future__ import annotations

from flask import Flask, Response, request

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
CONSOLE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                  "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
CONSOLE_CLIENT = "X-Wsexec-Client"  # the console sends it: its 401s then challenge a scheme browsers have no dialog for


def secure(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Content-Security-Policy", CONSOLE_POLICY if request.blueprint == "ui" else API_POLICY)
    if response.status_code == 401 and request.headers.get(CONSOLE_CLIENT) == "console":
        # `Basic` would make the browser open its own login dialog, then send what was typed there with every
        # request by itself: the ambient credentials the console exists to avoid
        response.headers["WWW-Authenticate"] = 'Console realm="wsexec"'
    return response


def init_app(app: Flask) -> None:
    app.after_request(secure)

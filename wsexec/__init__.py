"""wsexec: run shell scripts on a fleet of Linux servers over SSH, through a REST API.

The package root imports no Flask, so the worker side can use wsexec.config and wsexec.store on their own;
`from wsexec import create_app` loads the web app on first use.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from wsexec.app import create_app

        return create_app
    raise AttributeError(name)

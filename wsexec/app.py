"""The application factory."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from wsexec import auth, errors, headers, jobs, sse
from wsexec.config import Settings
from wsexec.query import WsexecRequest
from wsexec.store import Store, connect


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app from settings (default: the environment) with every blueprint under /wsexec."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, static_folder=None)
    app.request_class = WsexecRequest  # absent query keys without exceptions (wsexec/query.py)
    app.url_map.merge_slashes = False  # "//tasks" is a 404, not a redirect built from the client's Host header
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_body,
        API_TITLE="wsexec",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/wsexec",
        OPENAPI_JSON_PATH="openapi.json",
        JSON_SORT_KEYS=False,
    )
    if settings.trusted_proxies:  # behind nginx: the client's IP and scheme, not the proxy's
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
    app.extensions["wsexec"] = settings
    # a request waits about a second for Redis, not 30; each blocked ?wait or event stream holds a connection
    redis = connect(settings, retries=8, max_connections=settings.redis_connections)
    app.extensions["wsexec_store"] = Store.from_settings(redis, settings)
    app.extensions["wsexec_queue"] = jobs.make_queue(redis, settings.queue)
    app.extensions["wsexec_streams"] = sse.StreamSlots(settings.events_streams_max)
    # websh's websockets (flask-sock): pings keep proxies from closing an idle terminal; keystrokes come small
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": settings.websh_ping, "max_message_size": 1024 * 1024}

    api = errors.init_app(app)
    auth.init_app(app, settings)  # first: nothing is answered, not even 415, before credentials are checked
    app.before_request(errors.require_json_body)
    headers.init_app(app)

    from wsexec import audit, batches, events, metrics, ui, webhooks, whoami
    from wsexec.commands.routes import blp as commands_blp
    from wsexec.files.routes import blp as files_blp
    from wsexec.health import blp as health_blp
    from wsexec.instances.routes import blp as instances_blp
    from wsexec.notes.routes import blp as notes_blp
    from wsexec.registrations.routes import blp as registrations_blp
    from wsexec.registrations.routes import register_blp
    from wsexec.schedules.routes import blp as schedules_blp
    from wsexec.tasks.routes import blp as tasks_blp
    from wsexec.websh.routes import blp as websh_blp
    from wsexec.websh.routes import connect_blp as websh_connect_blp
    from wsexec.websh.routes import recordings_blp as websh_recordings_blp

    for blueprint in (health_blp, instances_blp, tasks_blp, commands_blp, notes_blp, audit.blp, batches.blp,
                      events.blp, metrics.blp, schedules_blp, registrations_blp, webhooks.blp, websh_blp,
                      whoami.blp):
        api.register_blueprint(blueprint, url_prefix=f"/wsexec/{blueprint.name}")
    api.register_blueprint(files_blp, url_prefix="/wsexec")  # /wsexec/files... and /wsexec/tasks/{id}/file
    api.register_blueprint(register_blp, url_prefix="/wsexec")  # /wsexec/register.sh and /wsexec/register
    api.register_blueprint(websh_connect_blp, url_prefix="/wsexec/websh")  # .../sessions/{id}/connect (websocket)
    api.register_blueprint(websh_recordings_blp, url_prefix="/wsexec/websh")  # .../sessions/{id}/recording
    app.register_blueprint(ui.blp, url_prefix="/wsexec/ui")  # not the API: outside its OpenAPI document
    return app

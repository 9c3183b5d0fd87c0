"""Portico: the client-portal and contact-settings core.

``create_app`` builds the application in named steps; nothing runs at import time.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the Portico application."""
    app = Flask(
        __name__,
        instance_path=os.environ.get("PORTICO_INSTANCE_PATH") or None,
        template_folder="../templates",
        static_folder="../static",
    )
    register_config(app, test_config)
    register_json(app)
    register_proxy(app)
    register_extensions(app)
    register_work(app)
    register_blueprints(app)
    register_cli(app)
    register_unit_of_work(app)
    return app


def register_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    from portal_app.config import load_config

    env = dict(os.environ)
    if test_config and "ENV" in test_config:
        env.update(test_config.pop("ENV"))
    app.config.update(load_config(app.instance_path, env))
    if test_config:
        app.config.update(test_config)


def register_json(app: Flask) -> None:
    """JSON the parser refuses, too deep included, is a 400 (R-REL-3)."""
    from portal_app.json_provider import SafeJSONProvider

    app.json = SafeJSONProvider(app)


def register_proxy(app: Flask) -> None:
    """Trust X-Forwarded-For/-Proto/-Host/-Port from exactly PROXY_HOPS proxies (opt-in)."""
    hops = app.config["PROXY_HOPS"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore[method-assign]


def register_extensions(app: Flask) -> None:
    from portal_app import auth, db_events, headers, i18n, redact, request_log, upload_stream
    from portal_app.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)
    i18n.init_app(app)
    redact.init_app()
    auth.init_app(app)
    db_events.init_app()
    headers.init_app(app)
    request_log.init_app(app)
    upload_stream.init_app(app)


def register_work(app: Flask) -> None:
    """The named jobs, staff-job kinds and email contexts this app (web or worker) can run."""
    from portal_app.jobs import catalogue

    catalogue.install(app)


def register_blueprints(app: Flask) -> None:
    from portal_app import dev, errors, ops, portal

    errors.init_app(app)
    app.register_blueprint(ops.bp)
    app.register_blueprint(portal.register_routes())
    if app.config["DEVELOPMENT"]:
        app.register_blueprint(dev.bp)

    import staff_api

    staff_api.init_app(app)


def register_cli(app: Flask) -> None:
    from portal_app.cli import register_commands

    register_commands(app)


def register_unit_of_work(app: Flask) -> None:
    from portal_app import transaction

    transaction.init_app(app)

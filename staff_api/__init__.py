"""The staff JSON API under /api/v1, documented by the OpenAPI document at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

from staff_api import errors

API_PREFIX = "/api/v1"


class StaffApi(Api):
    """flask-smorest's Api, minus its app-wide error handler: each API blueprint has the SPEC's
    (``staff_api.errors.attach``)."""

    def _register_error_handlers(self) -> None:
        return None

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        errors.attach(blp)
        super().register_blueprint(blp, parameters=parameters, **options)


def _use_error_schema() -> None:
    from staff_api.schemas import ErrorSchema

    # Default error responses in the document use the SPEC's error shape.
    StaffApi.ERROR_SCHEMA = ErrorSchema


def init_app(app: Flask) -> StaffApi:
    from staff_api import (
        account_contacts,
        accounts,
        audit,
        auth,
        contacts,
        documents,
        firm,
        jobs,
        mail,
        notes,
        passkeys,
        photos,
        reference,
        set_password,
        todos,
        tokens,
    )

    _use_error_schema()
    app.config.setdefault("API_TITLE", "Portico staff API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", API_PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = StaffApi(
        app,
        spec_kwargs={
            "info": {
                "description": (
                    "The API behind the staff single-page app: accounts, contacts, contact "
                    "settings, bulk updates and their jobs, Inbox+. Authenticate with a session "
                    "(POST /auth/login, then send the "
                    "returned csrf_token as X-CSRFToken on unsafe calls) or a personal API "
                    "token (Authorization: Bearer pt_…). Errors are "
                    '{"error": {"code", "message", "fields"}}.'
                )
            },
            "servers": [{"url": "/"}],
        },
    )
    api.spec.components.security_scheme("bearerToken", {"type": "http", "scheme": "bearer"})
    api.spec.components.security_scheme(
        "inboundSecret",
        {
            "type": "http",
            "scheme": "bearer",
            "description": "The firm's inbound secret (GET /firm/inbound-email).",
        },
    )
    api.spec.components.security_scheme(
        "sessionCookie", {"type": "apiKey", "in": "cookie", "name": app.config["SESSION_COOKIE_NAME"]}
    )
    api.spec.options["security"] = [{"bearerToken": []}, {"sessionCookie": []}]
    api.register_blueprint(auth.blp, url_prefix=f"{API_PREFIX}/auth")
    api.register_blueprint(passkeys.blp, url_prefix=f"{API_PREFIX}/auth/passkeys")
    api.register_blueprint(accounts.blp, url_prefix=f"{API_PREFIX}/accounts")
    api.register_blueprint(account_contacts.blp, url_prefix=f"{API_PREFIX}/accounts")
    api.register_blueprint(contacts.blp, url_prefix=f"{API_PREFIX}/contacts")
    api.register_blueprint(audit.blp, url_prefix=f"{API_PREFIX}/audit")
    api.register_blueprint(tokens.blp, url_prefix=f"{API_PREFIX}/api-tokens")
    api.register_blueprint(tokens.staff_blp, url_prefix=f"{API_PREFIX}/staff")
    api.register_blueprint(todos.blp, url_prefix=API_PREFIX)
    api.register_blueprint(firm.blp, url_prefix=f"{API_PREFIX}/firm")
    api.register_blueprint(mail.blp, url_prefix=API_PREFIX)
    api.register_blueprint(documents.blp, url_prefix=API_PREFIX)
    api.register_blueprint(photos.blp, url_prefix=API_PREFIX)
    api.register_blueprint(notes.blp, url_prefix=API_PREFIX)
    api.register_blueprint(jobs.blp, url_prefix=API_PREFIX)
    api.register_blueprint(jobs.inbox_blp, url_prefix=f"{API_PREFIX}/inbox")
    app.register_blueprint(reference.bp)
    app.register_blueprint(set_password.bp)
    auth.init_app(app)
    errors.init_app(app, API_PREFIX)
    app.extensions["staff_api"] = api
    return api

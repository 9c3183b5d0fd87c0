"""Error responses: the API's JSON shape under /api/, clear pages elsewhere."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from portal_app.extensions import db
from portal_app.services.errors import DomainError


def wants_json() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, code: str, message: str, fields: dict | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    response = jsonify(body)
    response.status_code = status
    return response


# What an error page says when the code raising the error gave no reason of its own.
PAGE_MESSAGES = {
    400: _l("The request was not understood. Go back and try again."),
    403: _l("You are not allowed to see this page."),
    404: _l("This page does not exist, or it is not available to you."),
    405: _l("This page cannot be used that way."),
    429: _l("Too many attempts in a short time."),
    500: _l("Something went wrong on our side. Please try again in a moment."),
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    503: "unavailable",
    500: "server_error",
}


# Flask-WTF's reasons, said the way an API client can act on them.
API_CSRF_MESSAGES = {
    "The referrer header is missing.": (
        "This HTTPS request has no Referer header; cookie-authenticated calls must come from a "
        "page of this site (or use a bearer token)."
    ),
    "The referrer does not match the host.": (
        "The Referer header names another site than this one; cookie-authenticated calls must come "
        "from a page of this site (behind a proxy, set PROXY_HOPS so the host is known)."
    ),
}


def api_csrf_message(reason: str) -> str:
    """Which CSRF check failed: the token (missing, invalid) or the HTTPS referrer check."""
    if reason in API_CSRF_MESSAGES:
        return API_CSRF_MESSAGES[reason]
    return f"{reason} Send the csrf_token from /api/v1/auth/me as the X-CSRFToken header.".strip()


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError) -> tuple[Response | str, int]:
        db.session.rollback()  # nothing half-changed survives a refused request
        if wants_json():
            return error_response(error.status, error.code, error.message, error.fields), error.status
        return render_template("errors/error.html", status=error.status, message=error.message), error.status

    @app.errorhandler(RedisError)
    def handle_redis_down(error: RedisError) -> tuple[Response | str, int]:
        # Rate limits live in Redis; without it the limited forms refuse rather than run
        # unguarded (R-SEC-11: fail closed).
        db.session.rollback()
        app.logger.error("Redis unavailable: %s", error)
        message = _l("This is temporarily unavailable. Please try again in a few minutes.")
        if wants_json():
            with force_locale("en"):  # the staff API speaks English
                response = error_response(503, "unavailable", str(message))
        else:
            response = render_template("errors/error.html", status=503, message=message)
        return response, 503

    @app.errorhandler(RecursionError)
    def handle_nested_json(error: RecursionError) -> tuple[Response | str, int]:
        # webargs parses request bodies with the stdlib's json.loads, which raises this (not a
        # ValueError) for input nested too deeply: malformed JSON, a 400 (R-REL-3)
        db.session.rollback()
        if not request.is_json:
            raise error
        message = "The JSON body is nested too deeply to read."
        if wants_json():
            return error_response(400, "bad_request", message), 400
        return render_template("errors/error.html", status=400, message=message), 400

    @app.errorhandler(CSRFError)
    def handle_csrf_error(error: CSRFError) -> tuple[Response | str, int]:
        if wants_json():
            return error_response(403, "csrf_failed", api_csrf_message(error.description or "")), 403
        message = _(
            "This form has expired or was not sent from this site. Go back, reload the page and try again."
        )
        return render_template("errors/error.html", status=400, message=message), 400

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response | tuple[str, int]:
        db.session.rollback()
        status = error.code or 500
        if wants_json():
            data = getattr(error, "data", None) or {}
            fields = data.get("errors") or data.get("messages") or {}
            if isinstance(fields, dict) and set(fields) <= {
                "json",
                "query",
                "files",
                "form",
                "headers",
                "path",
            }:
                # webargs nests messages under the location; the SPA wants field names.
                fields = {k: v for loc in fields.values() if isinstance(loc, dict) for k, v in loc.items()}
            response = error_response(
                status, HTTP_CODES.get(status, "error"), error.description or "", fields
            )
            for name, value in error.get_headers() if status in (405, 429) else []:
                if name.lower() in {"allow", "retry-after"}:
                    response.headers[name] = value
            return response
        message = error.description
        if status in (429, 500) or message == type(error).description:
            # werkzeug's or the limiter's English: say it in the page's language
            message = PAGE_MESSAGES.get(status, "")
        return render_template("errors/error.html", status=status, message=message), status

"""The API's one error contract (SPEC §10): ``{"error": {"code", "message", "fields"}}``.

Domain errors, HTTP errors, CSRF refusals, an unreachable Redis and JSON nested too deeply all
answer in that shape. The handlers are the API blueprints' own (``attach``), so the portal's
pages never see them; the one case no blueprint can catch, a URL under /api/v1 that matches no
route (404, 405), reaches ``routing_error`` through the app's page handler.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from portal_app.extensions import db
from portal_app.services.errors import DomainError

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
CSRF_MESSAGES = {
    "The referrer header is missing.": (
        "This HTTPS request has no Referer header; cookie-authenticated calls must come from a "
        "page of this site (or use a bearer token)."
    ),
    "The referrer does not match the host.": (
        "The Referer header names another site than this one; cookie-authenticated calls must come "
        "from a page of this site (behind a proxy, set PROXY_HOPS so the host is known)."
    ),
}
# webargs nests messages under the location; the SPA wants field names.
ARG_LOCATIONS = frozenset({"json", "query", "files", "form", "headers", "path"})


def error_response(status: int, code: str, message: str, fields: dict | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    response.status_code = status
    return response


def csrf_message(reason: str) -> str:
    """Which CSRF check failed: the token (missing, invalid) or the HTTPS referrer check."""
    if reason in CSRF_MESSAGES:
        return CSRF_MESSAGES[reason]
    return f"{reason} Send the csrf_token from /api/v1/auth/me as the X-CSRFToken header.".strip()


def domain_error(error: DomainError) -> Response:
    db.session.rollback()  # nothing half-changed survives a refused request
    return error_response(error.status, error.code, error.message, error.fields)


def http_error(error: HTTPException) -> Response:
    db.session.rollback()
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    fields = data.get("errors") or data.get("messages") or {}
    if isinstance(fields, dict) and set(fields) <= ARG_LOCATIONS:
        fields = {k: v for loc in fields.values() if isinstance(loc, dict) for k, v in loc.items()}
    response = error_response(status, HTTP_CODES.get(status, "error"), error.description or "", fields)
    for name, value in error.get_headers() if status in (405, 429) else []:
        if name.lower() in {"allow", "retry-after"}:
            response.headers[name] = value
    return response


def csrf_error(error: CSRFError) -> Response:
    return error_response(403, "csrf_failed", csrf_message(error.description or ""))


def redis_down(error: RedisError) -> Response:
    # Rate limits live in Redis; without it the limited calls refuse rather than run unguarded
    # (R-SEC-11: fail closed).
    db.session.rollback()
    current_app.logger.error("Redis unavailable: %s", error)
    message = "This is temporarily unavailable. Please try again in a few minutes."
    return error_response(503, "unavailable", message)


def nested_json(error: RecursionError) -> Response:
    # webargs parses bodies with the stdlib's json.loads, which raises this (not a ValueError) for
    # input nested too deeply: malformed JSON, a 400 (R-REL-3)
    db.session.rollback()
    if not request.is_json:
        raise error
    return error_response(400, "bad_request", "The JSON body is nested too deeply to read.")


HANDLERS = (
    (CSRFError, csrf_error),  # before HTTPException: a CSRFError is one
    (DomainError, domain_error),
    (HTTPException, http_error),
    (RedisError, redis_down),
    (RecursionError, nested_json),
)


def attach(blueprint: Blueprint) -> Blueprint:
    """Give an API blueprint the contract's handlers, once (before its first registration: the
    blueprints are module-level, and every app the factory builds registers them)."""
    if not getattr(blueprint, "_portico_errors", False):
        for kind, handler in HANDLERS:
            blueprint.register_error_handler(kind, handler)
        blueprint._portico_errors = True  # type: ignore[attr-defined]
    return blueprint


def answer(error: Exception) -> Response | None:
    """The contract's answer to an error no blueprint saw (None: not one of the contract's)."""
    for kind, handler in HANDLERS:
        if isinstance(error, kind):
            return handler(error)  # type: ignore[operator]
    return None


def init_app(app: Flask, prefix: str) -> None:
    """Claim the errors of requests under ``prefix`` that matched no route (a 404 or 405, or a
    refusal before routing was known): the app's page handlers hand them here."""
    app.extensions.setdefault("portico.unrouted_errors", []).append((prefix + "/", answer))

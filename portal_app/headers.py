"""Browser security headers on every response (R-SEC-14).

Written here rather than with Flask-Talisman: Talisman also rewrites the session cookie's flags
and redirects to HTTPS itself, both of which Portico already does its own way (``__Host-``
cookies from the configuration, TLS at the proxy with ``PROXY_HOPS``); and its per-view CSP
options would not express the one rule that differs by response type (HTML vs JSON). What is
left is a handful of constant headers.
"""

from __future__ import annotations

from flask import Flask, Response, request
from flask_login import current_user

# SPEC R-SEC-14, word for word: no inline script anywhere (htmx is a file under static/, and
# told by its meta config not to inject its indicator <style>).
CSP = (
    "default-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)
# /dev/mail previews emails, whose HTML is styled inline as email clients need; development only.
DEV_MAIL_CSP = CSP + "; style-src 'self' 'unsafe-inline'"
# The API reference (Swagger UI) draws its icons from data: URIs in its stylesheet; still no
# inline script.
API_REFERENCE_CSP = CSP + "; img-src 'self' data:"
HSTS = "max-age=31536000; includeSubDomains"


def init_app(app: Flask) -> None:
    production = not app.config["DEVELOPMENT"]

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        if production:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if response.mimetype == "text/html":
            if request.blueprint == "dev":
                headers["Content-Security-Policy"] = DEV_MAIL_CSP
            elif request.blueprint == "api-reference":
                headers["Content-Security-Policy"] = API_REFERENCE_CSP
            else:
                headers["Content-Security-Policy"] = CSP
            headers["X-Frame-Options"] = "DENY"  # for browsers older than frame-ancestors
        elif response.mimetype == "application/json" and _authenticated():
            headers["Cache-Control"] = "no-store"
        return response


def _authenticated() -> bool:
    """A bearer token was sent, or a session is signed in: the answer is someone's data."""
    if request.headers.get("Authorization"):
        return True
    try:
        return bool(current_user.is_authenticated)
    except Exception:  # outside a request that loaded the user (e.g. an early error)
        return False

"""Error pages: a clear page in the visitor's language, never a stack trace.

The staff API answers its own errors in JSON (``staff_api.errors``, blueprint handlers). A
request that matched no route has no blueprint: when a package claimed its URL prefix
(``portico.unrouted_errors``), that package answers, so /api/v1/nowhere is JSON too.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from portal_app.extensions import db
from portal_app.services.errors import DomainError

# What an error page says when the code raising the error gave no reason of its own.
PAGE_MESSAGES = {
    400: _l("The request was not understood. Go back and try again."),
    403: _l("You are not allowed to see this page."),
    404: _l("This page does not exist, or it is not available to you."),
    405: _l("This page cannot be used that way."),
    429: _l("Too many attempts in a short time."),
    500: _l("Something went wrong on our side. Please try again in a moment."),
}


def _page(status: int, message: object) -> tuple[str, int]:
    return render_template("errors/error.html", status=status, message=message), status


def _claimed(error: Exception) -> Response | None:
    """The answer of the package that claimed this request's URL prefix, if one did."""
    if request.url_rule is not None:
        return None
    claims: list[tuple[str, Callable[[Exception], Response | None]]] = current_app.extensions.get(
        "portico.unrouted_errors", []
    )
    for prefix, answer in claims:
        if request.path.startswith(prefix):
            return answer(error)
    return None


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError) -> Response | tuple[str, int]:
        db.session.rollback()  # nothing half-changed survives a refused request
        return _claimed(error) or _page(error.status, error.message)

    @app.errorhandler(RedisError)
    def handle_redis_down(error: RedisError) -> Response | tuple[str, int]:
        # Rate limits live in Redis; without it the limited forms refuse rather than run
        # unguarded (R-SEC-11: fail closed).
        db.session.rollback()
        app.logger.error("Redis unavailable: %s", error)
        message = _l("This is temporarily unavailable. Please try again in a few minutes.")
        return _claimed(error) or _page(503, message)

    @app.errorhandler(RecursionError)
    def handle_nested_json(error: RecursionError) -> Response | tuple[str, int]:
        db.session.rollback()
        if not request.is_json:
            raise error
        return _claimed(error) or _page(400, "The JSON body is nested too deeply to read.")

    @app.errorhandler(CSRFError)
    def handle_csrf_error(error: CSRFError) -> Response | tuple[str, int]:
        message = _(
            "This form has expired or was not sent from this site. Go back, reload the page and try again."
        )
        return _claimed(error) or _page(400, message)

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Response | tuple[str, int]:
        db.session.rollback()
        claimed = _claimed(error)
        if claimed is not None:
            return claimed
        status = error.code or 500
        message = error.description
        if status in (429, 500) or message == type(error).description:
            # werkzeug's or the limiter's English: say it in the page's language
            message = PAGE_MESSAGES.get(status, "")
        return _page(status, message)

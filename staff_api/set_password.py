"""The page a new staff user's email links to: choose a password (the staff app is a separate
client; this one small server page means no password ever travels through an admin)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

from portal_app.extensions import db, limiter
from portal_app.models import Firm
from portal_app.services import staff_users
from portal_app.services.errors import ValidationFailed
from portal_app.tokens import digest

bp = Blueprint("staff-password", __name__)


def _link_key() -> str:
    return "staff-link:" + digest((request.view_args or {}).get("token", ""))[:32]


@bp.after_request
def _no_referrer(response: Response) -> Response:
    response.headers["Referrer-Policy"] = "no-referrer"  # the URL carries a token (R-SEC-9)
    return response


@bp.route("/staff/set-password/<token>", methods=["GET", "POST"])
@limiter.limit(lambda: "30 per 10 minutes", methods=["POST"], scope="staff-password-ip")
@limiter.limit(lambda: "10 per 10 minutes", key_func=_link_key, methods=["POST"], scope="staff-password-link")
def set_password(token: str) -> Any:
    user, problem = staff_users.check_set_password_token(token)
    if user is None:
        return render_template(
            "staff/set_password.html", problem=problem
        ), 410 if problem != "invalid" else 400
    firm_name = db.session.get_one(Firm, user.firm_id).name
    context: dict[str, Any] = {"address": user.email, "firm_name": firm_name, "errors": []}
    if request.method == "GET":  # mail scanners open links: a GET changes nothing
        return render_template("staff/set_password.html", **context)
    try:
        validate_csrf(request.form.get("csrf_token"))
    except ValidationError:
        abort(400, "This form has expired. Reload the page and try again.")
    try:
        staff_users.set_first_password(
            user, request.form.get("password", ""), request.form.get("confirm", "")
        )
    except ValidationFailed as exc:
        db.session.rollback()
        context["errors"] = [m for messages in exc.fields.values() for m in messages] or [exc.message]
        return render_template("staff/set_password.html", **context), 422
    return render_template("staff/set_password.html", done=True, **context)

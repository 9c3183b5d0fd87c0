"""Passkeys in the portal (R-SEC-15): sign in with one from the login page (the button, or the
browser's autofill), and add, list and remove them on the profile's passkey page.

The browser side is ``static/js/passkeys.js``; it talks to the JSON endpoints here with the
page's CSRF token in ``X-CSRFToken``. Without JavaScript the passkey buttons are absent, the
password form works as ever, and removing a passkey is a plain form.
"""

from __future__ import annotations

import time
from typing import Any

from flask import jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import validate_csrf
from wtforms import ValidationError

from portal_app import metrics, transaction
from portal_app.extensions import db, limiter
from portal_app.models import PortalUser
from portal_app.portal.base import bp, client_or_401, client_page, per_ip, refuse_expired_form, safe_next
from portal_app.portal.forms import ConfirmForm
from portal_app.portal.sign_in import sign_in
from portal_app.services import passkey_reports, passkeys
from portal_app.services.errors import DomainError

RECENT_SIGN_IN_SECONDS = 10 * 60


def _check_csrf() -> None:
    """The page's session-bound token in ``X-CSRFToken`` (R-SEC-2); portal pages send no Referer,
    so, as for its forms and uploads, the token is the check."""
    try:
        validate_csrf(request.headers.get("X-CSRFToken", ""))
    except ValidationError:
        refuse_expired_form()


def _json_error(message: str, status: int, code: str) -> Any:
    return jsonify({"error": {"code": code, "message": message, "fields": {}}}), status


def _credential() -> Any:
    body = request.get_json(silent=True)
    return body.get("credential") if isinstance(body, dict) else None


def _recent(user: PortalUser) -> bool:
    signed_in_at = session.get("auth_at")
    return isinstance(signed_in_at, int) and time.time() - signed_in_at <= RECENT_SIGN_IN_SECONDS


# --- signing in ----------------------------------------------------------------------------------


@bp.post("/portal/passkeys/login/options")
@limiter.limit(per_ip, scope="portal-ip")
def passkey_login_options() -> Any:
    _check_csrf()
    try:
        return jsonify({"publicKey": passkeys.login_options("client")})
    except DomainError as exc:
        return _json_error(exc.message, exc.status, exc.code)


@bp.post("/portal/passkeys/login/verify")
@limiter.limit(per_ip, scope="portal-ip")
def passkey_login_verify() -> Any:
    """A passkey proves two factors: a new session that passed them, straight to the page."""
    _check_csrf()
    body = request.get_json(silent=True)
    next_path = safe_next(body.get("next")) if isinstance(body, dict) else None
    try:
        user = passkeys.authenticate("client", _credential())
    except passkeys.ClonedPasskey as cloned:
        transaction.keep_refusal_record()
        passkey_reports.block(cloned.passkey_id)  # kept although the sign-in is refused
        metrics.SIGN_INS.labels("client", "failed").inc()
        return _json_error(
            _(
                "This passkey was blocked because it looks like a copy. Log in with your password; "
                "we have emailed you about it."
            ),
            401,
            "passkey_cloned",
        )
    except passkeys.PasskeyRefused as exc:
        metrics.SIGN_INS.labels("client", "failed").inc()
        message = (
            _("That passkey is blocked. Log in with your password and remove it on your profile.")
            if exc.code == "passkey_blocked"
            else _("That passkey did not work here. Try again, or log in with your password.")
        )
        return _json_error(message, 401, exc.code)
    except DomainError as exc:
        return _json_error(exc.message, exc.status, exc.code)
    metrics.SIGN_INS.labels("client", "succeeded").inc()
    sign_in(user)  # type: ignore[arg-type]
    session["mfa_at"] = int(time.time())  # a passkey is two factors (R-SEC-15)
    return jsonify({"redirect": next_path or url_for("portal.home")})


# --- the passkey page ----------------------------------------------------------------------------


@bp.get("/portal/passkeys")
@client_page
def passkeys_page(user: PortalUser) -> Any:
    notice = None
    if request.args.get("added"):
        notice = _("Your passkey is added. Next time, choose “Sign in with a passkey”.")
    elif request.args.get("removed"):
        notice = _("The passkey is removed.")
    return render_template(
        "portal/passkeys.html",
        passkeys=passkeys.list_passkeys(user),
        available=passkeys.available(),
        recent=_recent(user),
        address=user.email.address,
        form=ConfirmForm(),
        notice=notice,
    )


@bp.post("/portal/passkeys/register/options")
@limiter.limit(per_ip, scope="portal-ip")
def passkey_register_options() -> Any:
    user = client_or_401()
    _check_csrf()
    if not _recent(user):
        return _json_error(_("Log in again to add a passkey."), 403, "recent_sign_in_required")
    try:
        return jsonify({"publicKey": passkeys.registration_options(user)})
    except DomainError as exc:
        return _json_error(exc.message, exc.status, exc.code)


@bp.post("/portal/passkeys/register/verify")
@limiter.limit(per_ip, scope="portal-ip")
def passkey_register_verify() -> Any:
    user = client_or_401()
    _check_csrf()
    if not _recent(user):
        return _json_error(_("Log in again to add a passkey."), 403, "recent_sign_in_required")
    body = request.get_json(silent=True)
    name = body.get("name") if isinstance(body, dict) and isinstance(body.get("name"), str) else ""
    try:
        passkeys.register(user, _credential(), name)
    except passkeys.PasskeyRefused:
        return _json_error(_("The passkey could not be added. Please try again."), 422, "passkey_refused")
    except DomainError as exc:
        return _json_error(exc.message, exc.status, exc.code)
    return jsonify({"redirect": url_for("portal.passkeys_page", added=1)})


@bp.post("/portal/passkeys/<int:passkey_id>/remove")
@limiter.limit(per_ip, scope="portal-ip")
def passkey_remove(passkey_id: int) -> Any:
    """A plain form: works without JavaScript. A sign-in of the last 10 minutes is needed."""
    user = client_or_401()
    if not ConfirmForm().validate_on_submit():
        refuse_expired_form()
    if not _recent(user):
        return redirect(url_for("portal.login", next=url_for("portal.passkeys_page"), again=1), code=303)
    try:
        passkeys.remove(user, passkey_id)
    except DomainError:
        db.session.rollback()
    return redirect(url_for("portal.passkeys_page", removed=1), code=303)

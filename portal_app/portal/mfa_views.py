"""Two-step sign-in in the portal (R-SEC-13): the code page after the password, enrolment on the
profile (an authenticator app or codes by email), recovery codes, and the firm's "required" gate.

Everything works without JavaScript. A sign-in waiting for its second step is kept in the
session (signed, never the user's id alone: the user's session token must still match), not as a
login: no account data shows until the code is right.
"""

from __future__ import annotations

import time
from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user

from portal_app import metrics
from portal_app.auth import start_session
from portal_app.extensions import db, limiter
from portal_app.models import PortalUser
from portal_app.portal import bp
from portal_app.portal.forms import CodeForm, ConfirmForm, DisableMfaForm
from portal_app.rate_limits import failed_attempts
from portal_app.services import mfa
from portal_app.services.errors import Conflict, ValidationFailed
from portal_app.transaction import commit

PENDING = "mfa_pending"
PENDING_SECONDS = 600  # long enough to fetch an emailed code
# What a client whose firm requires two factors, and who has none, may still reach.
ENROLMENT_ENDPOINTS = frozenset(
    {
        "portal.mfa",
        "portal.mfa_app",
        "portal.mfa_app_confirm",
        "portal.mfa_email",
        "portal.mfa_email_confirm",
        "portal.mfa_recovery_download",
        "portal.logout",
        "portal.index",
        "static",
    }
)


def _pending_user() -> PortalUser | None:
    pending = session.get(PENDING)
    if not isinstance(pending, dict):
        return None
    if not isinstance(pending.get("at"), int) or time.time() - pending["at"] > PENDING_SECONDS:
        return None
    user = db.session.get(PortalUser, pending.get("u")) if isinstance(pending.get("u"), int) else None
    if user is None or not user.is_active or user.session_token != pending.get("t"):
        return None  # logged out everywhere, or the password changed, meanwhile
    return user


def _pending_key() -> str:
    pending = session.get(PENDING)
    user_id = pending.get("u") if isinstance(pending, dict) else None
    return f"mfa-user:{user_id}"


def _per_ip() -> str:
    return current_app.config["LIMIT_PER_IP"]


def _per_user() -> str:
    return current_app.config["LIMIT_PER_EMAIL"]


def begin_second_step(user: PortalUser, *, next_path: str | None) -> Response:
    """After a correct password (login, activation, reset) of a user with two factors: no session
    yet, only the pending sign-in; the code page asks for the second step."""
    session.clear()
    session[PENDING] = {
        "u": user.id,
        "t": user.session_token,
        "at": int(time.time()),
        "next": next_path or "",
    }
    if user.mfa_method == "email":
        mfa.send_email_code(user, purpose="login")
    commit()
    return redirect(url_for("portal.login_code"), code=303)


def finish_sign_in(user: PortalUser, *, next_path: str | None, record: Any) -> Response:
    """A new session (rotated) that passed both steps."""
    start_session(user)
    session["mfa_at"] = int(time.time())
    record(user)
    commit()
    return redirect(next_path or url_for("portal.home"), code=303)


@bp.route("/portal/login/code", methods=["GET", "POST"])
@limiter.limit(_per_ip, methods=["POST"], scope="portal-ip")
@failed_attempts(_per_user, _pending_key, scope="portal-mfa-user", methods=["POST"])
def login_code() -> Any:
    from portal_app.portal.views import _record_login, safe_next

    form = CodeForm()
    if request.method == "POST" and not form.validate_on_submit():
        _refuse_without_csrf(form)
    user = _pending_user()
    if user is None:
        session.pop(PENDING, None)
        return redirect(url_for("portal.login", expired="code"))
    error = None
    if form.validate_on_submit():
        verified = mfa.verify(user, form.code.data or "") is not None
        metrics.SIGN_INS.labels("client", "succeeded" if verified else "failed").inc()
        if verified:
            next_path = safe_next(session.get(PENDING, {}).get("next"))
            return finish_sign_in(user, next_path=next_path, record=_record_login)
        commit()  # nothing to keep, but end the transaction the check opened
        error = _("That code is not right. Try again, or use one of your recovery codes.")
    elif request.method == "POST":
        _refuse_without_csrf(form)
        error = _("Enter the code.")
    return render_template(
        "portal/login_code.html", form=form, error=error, method=user.mfa_method, resend=ConfirmForm()
    ), (401 if error else 200)


@bp.post("/portal/login/code/email")
@limiter.limit(_per_ip, scope="portal-ip")
@limiter.limit(_per_user, key_func=_pending_key, scope="portal-mfa-user")
def login_code_email() -> Any:
    """Email a new sign-in code (clients who chose codes by email)."""
    if not ConfirmForm().validate_on_submit():
        abort(400, _("This form has expired. Please reload the page and try again."))
    user = _pending_user()
    if user is None:
        return redirect(url_for("portal.login", expired="code"))
    if user.mfa_method == "email":
        mfa.send_email_code(user, purpose="login")
        commit()
    return redirect(url_for("portal.login_code", sent=1), code=303)


def _refuse_without_csrf(form: Any) -> None:
    from portal_app.portal.views import refuse_without_csrf

    refuse_without_csrf(form)


def _signed_in() -> PortalUser:
    user = current_user._get_current_object() if current_user.is_authenticated else None
    if not isinstance(user, PortalUser):
        abort(401)
    return user


@bp.before_app_request
def enrolment_gate() -> Response | None:
    """R-SEC-13: a client whose firm requires two factors, and who has none, is led to enrol
    before any page with account data."""
    if not request.path.startswith("/portal/") or request.endpoint in ENROLMENT_ENDPOINTS:
        return None
    user = current_user._get_current_object() if current_user.is_authenticated else None
    if not isinstance(user, PortalUser) or not mfa.must_enrol(user):
        return None
    return redirect(url_for("portal.mfa"), code=303)


@bp.errorhandler(401)
def _needs_login(_error: Exception) -> Response:
    return redirect(url_for("portal.login", next=request.path))


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    user = _signed_in()
    return render_template(
        template,
        address=user.email.address,
        required=mfa.required(user),
        form=ConfirmForm(),
        **context,
    ), status


@bp.get("/portal/mfa", endpoint="mfa")
def mfa_page() -> Any:
    """Two-step sign-in: choose a way to enrol, or see and turn off the one in use."""
    user = _signed_in()
    return _page(
        "portal/mfa.html",
        user_method=user.mfa_method,
        codes_left=mfa.recovery_codes_left(user) if mfa.enrolled(user) else 0,
        disable_form=DisableMfaForm(),
        notice=_notice(),
    )


def _notice() -> str | None:
    if request.args.get("off"):
        return _("Two-step sign-in is off.")
    return None


@bp.route("/portal/mfa/app", methods=["GET", "POST"])
def mfa_app() -> Any:
    """POST starts enrolling an authenticator app; GET shows its QR code and key (a GET changes
    nothing), and the form for the first code."""
    user = _signed_in()
    if request.method == "POST":
        if not ConfirmForm().validate_on_submit():
            abort(400, _("This form has expired. Please reload the page and try again."))
        try:
            mfa.begin_totp(user)
        except Conflict:
            db.session.rollback()
            return redirect(url_for("portal.mfa"), code=303)
        commit()
        return redirect(url_for("portal.mfa_app"), code=303)
    setup = mfa.pending_totp(user)
    if setup is None:
        return redirect(url_for("portal.mfa"), code=303)
    return _page("portal/mfa_app.html", setup=setup, code_form=CodeForm(), error=None)


@bp.post("/portal/mfa/app/confirm")
@limiter.limit(_per_ip, scope="portal-ip")
def mfa_app_confirm() -> Any:
    user = _signed_in()
    form = CodeForm()
    if not form.validate_on_submit():
        _refuse_without_csrf(form)
        return redirect(url_for("portal.mfa_app"), code=303)
    try:
        codes = mfa.confirm_totp(user, form.code.data or "")
    except ValidationFailed:
        commit()
        setup = mfa.pending_totp(user)
        return _page(
            "portal/mfa_app.html",
            422,
            setup=setup,
            code_form=form,
            error=_(
                "That code is not right. Check that your phone's clock is set automatically, "
                "then try the newest code."
            ),
        )
    except Conflict:
        db.session.rollback()
        return redirect(url_for("portal.mfa"), code=303)
    return _enrolled(user, codes)


@bp.route("/portal/mfa/email", methods=["GET", "POST"])
@limiter.limit(_per_ip, methods=["POST"], scope="portal-ip")
def mfa_email() -> Any:
    """POST emails a code to confirm; GET shows the form for it."""
    user = _signed_in()
    if request.method == "POST":
        if not ConfirmForm().validate_on_submit():
            abort(400, _("This form has expired. Please reload the page and try again."))
        try:
            mfa.begin_email(user)
        except Conflict:
            db.session.rollback()
            return redirect(url_for("portal.mfa"), code=303)
        commit()
        return redirect(url_for("portal.mfa_email"), code=303)
    if mfa.enrolled(user):
        return redirect(url_for("portal.mfa"), code=303)
    return _page("portal/mfa_email.html", code_form=CodeForm(), error=None)


@bp.post("/portal/mfa/email/confirm")
@limiter.limit(_per_ip, scope="portal-ip")
def mfa_email_confirm() -> Any:
    user = _signed_in()
    form = CodeForm()
    if not form.validate_on_submit():
        _refuse_without_csrf(form)
        return redirect(url_for("portal.mfa_email"), code=303)
    try:
        codes = mfa.confirm_email(user, form.code.data or "")
    except ValidationFailed:
        commit()
        return _page(
            "portal/mfa_email.html", 422, code_form=form, error=_("That code is not right or has expired.")
        )
    except Conflict:
        db.session.rollback()
        return redirect(url_for("portal.mfa"), code=303)
    return _enrolled(user, codes)


def _enrolled(user: PortalUser, codes: list[str]) -> Any:
    """Two factors are on: a rotated session that passed them, and the recovery codes, shown once."""
    start_session(user)
    session["mfa_at"] = int(time.time())
    commit()
    response = make_response(_page("portal/recovery_codes.html", codes=codes))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/portal/mfa/recovery-codes.txt")
def mfa_recovery_download() -> Any:
    """The codes just shown, as a text file. Nothing is kept to serve them again: the page posts
    them back, and only unused codes of this user are written out."""
    user = _signed_in()
    if not ConfirmForm().validate_on_submit():
        abort(400, _("This form has expired. Please reload the page and try again."))
    codes = [c.strip() for c in request.form.getlist("code")][: mfa.RECOVERY_CODE_COUNT]
    if not mfa.owns_recovery_codes(user, codes):
        abort(400, _("These recovery codes are not yours or were used."))
    firm = user.firm.name
    lines = [
        _("Recovery codes for %(address)s at %(firm)s", address=user.email.address, firm=firm),
        _("Each code works once, in place of the code from your app or email."),
        "",
        *codes,
        "",
    ]
    response = Response("\r\n".join(lines), mimetype="text/plain")
    response.headers["Content-Disposition"] = 'attachment; filename="portico-recovery-codes.txt"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/portal/mfa/disable")
@limiter.limit(_per_ip, scope="portal-ip")
def mfa_disable() -> Any:
    user = _signed_in()
    form = DisableMfaForm()
    if not form.validate_on_submit():
        _refuse_without_csrf(form)
        error = _("Enter your password and a code.")
    else:
        try:
            mfa.disable(user, form.password.data or "", form.code.data or "")
        except (ValidationFailed, Conflict) as exc:
            commit()
            error = (
                _("Your firm requires two-step sign-in.")
                if isinstance(exc, Conflict)
                else _("The password or the code is not right.")
            )
        else:
            commit()
            return redirect(url_for("portal.mfa", off=1), code=303)
    return _page(
        "portal/mfa.html",
        422,
        user_method=user.mfa_method,
        codes_left=mfa.recovery_codes_left(user),
        disable_form=form,
        notice=None,
        error=error,
    )

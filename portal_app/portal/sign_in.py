"""Signing in and out: the password, then the code when two factors are on (R-SEC-13).

A sign-in waiting for its second step is kept in the session (signed, never the user's id
alone: the user's session token must still match), not as a login: no account data shows until
the code is right. The rules (equal time for unknown emails, rehashing) are in
``services.portal_sessions``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from portal_app import metrics
from portal_app.auth import end_session, start_session
from portal_app.extensions import db, limiter
from portal_app.models import PortalUser
from portal_app.portal.base import (
    bp,
    limit_failed_logins,
    limit_ip,
    per_email,
    per_ip,
    portal_user,
    refuse_expired_form,
    refuse_without_csrf,
    safe_next,
)
from portal_app.portal.forms import CodeForm, ConfirmForm, LoginForm
from portal_app.rate_limits import failed_attempts
from portal_app.services import mfa, mfa_email, passkeys, portal_sessions

PENDING = "mfa_pending"
PENDING_SECONDS = 600  # long enough to fetch an emailed code


@bp.route("/portal/login", methods=["GET", "POST"])
@limit_ip
@limit_failed_logins
def login() -> Any:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    error = None
    if form.validate_on_submit():
        user = portal_sessions.authenticate(form.email.data or "", form.password.data or "")
        metrics.SIGN_INS.labels("client", "failed" if user is None else "succeeded").inc()
        if user is not None and mfa.enrolled(user):
            return begin_second_step(user, next_path=safe_next(form.next.data))
        if user is not None:
            sign_in(user)
            return redirect(safe_next(form.next.data) or url_for("portal.home"))
        error = _("The email or password is not correct.")
    elif request.method == "POST":
        refuse_without_csrf(form)
        error = _("Enter your email and password.")
    expired = request.args.get("expired")
    notice = None
    if expired in ("idle", "absolute"):
        notice = _("You were logged out after a period of inactivity. Please log in again.")
    elif expired == "code":
        notice = _("The sign-in took too long. Please enter your email and password again.")
    elif request.args.get("again"):
        notice = _("For your safety, log in again to change your passkeys.")
    return render_template(
        "portal/login.html", form=form, error=error, notice=notice, passkeys=passkeys.available()
    ), (
        401 if error else 200
    )


@bp.post("/portal/logout")
def logout() -> Any:
    form = ConfirmForm()
    if not form.validate_on_submit():
        refuse_expired_form()
    user = portal_user()
    if user is not None:
        portal_sessions.end_every_session(user)
    end_session()
    return redirect(url_for("portal.login"))


def sign_in(user: PortalUser) -> None:
    """A new session (rotated, R-SEC-5), recorded."""
    start_session(user)
    portal_sessions.record_sign_in(
        user, ip_address=request.remote_addr or "", user_agent=request.user_agent.string or ""
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
        mfa_email.send_email_code(user, purpose="login")
    return redirect(url_for("portal.login_code"), code=303)


def finish_sign_in(user: PortalUser, *, next_path: str | None) -> Response:
    """A new session (rotated) that passed both steps."""
    sign_in(user)
    session["mfa_at"] = int(time.time())
    return redirect(next_path or url_for("portal.home"), code=303)


@bp.route("/portal/login/code", methods=["GET", "POST"])
@limiter.limit(per_ip, methods=["POST"], scope="portal-ip")
@failed_attempts(per_email, _pending_key, scope="portal-mfa-user", methods=["POST"])
def login_code() -> Any:
    form = CodeForm()
    if request.method == "POST" and not form.validate_on_submit():
        refuse_without_csrf(form)
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
            return finish_sign_in(user, next_path=next_path)
        error = _("That code is not right. Try again, or use one of your recovery codes.")
    elif request.method == "POST":
        refuse_without_csrf(form)
        error = _("Enter the code.")
    return render_template(
        "portal/login_code.html", form=form, error=error, method=user.mfa_method, resend=ConfirmForm()
    ), (401 if error else 200)


@bp.post("/portal/login/code/email")
@limiter.limit(per_ip, scope="portal-ip")
@limiter.limit(per_email, key_func=_pending_key, scope="portal-mfa-user")
def login_code_email() -> Any:
    """Email a new sign-in code (clients who chose codes by email)."""
    if not ConfirmForm().validate_on_submit():
        refuse_expired_form()
    user = _pending_user()
    if user is None:
        return redirect(url_for("portal.login", expired="code"))
    if user.mfa_method == "email":
        mfa_email.send_email_code(user, purpose="login")
    return redirect(url_for("portal.login_code", sent=1), code=303)

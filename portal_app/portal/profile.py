"""The client's profile: time zone and language, the password, and two-step sign-in (an
authenticator app or codes by email, recovery codes shown once, turning it off). Everything
works without JavaScript."""

from __future__ import annotations

import time
from typing import Any

import flask_babel
from flask import Response, abort, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from portal_app import timezones
from portal_app.auth import start_session
from portal_app.extensions import db, limiter
from portal_app.models import PortalUser
from portal_app.portal.base import (
    bp,
    client_or_401,
    client_page,
    firm_and_address,
    password_errors,
    per_ip,
    refuse_expired_form,
    refuse_without_csrf,
)
from portal_app.portal.forms import ChangePasswordForm, CodeForm, ConfirmForm, DisableMfaForm, ProfileForm
from portal_app.portal.photos import PHOTO_MESSAGES
from portal_app.services import client_accounts, mfa, passkeys, portal_sessions
from portal_app.services.errors import Conflict, ValidationFailed


@bp.route("/portal/profile", methods=["GET", "POST"])
@client_page
def profile(user: PortalUser) -> Any:
    settings_form = ProfileForm(prefix="profile", obj=user)
    firm_zone = user.firm.timezone
    choices = timezones.grouped_choices(firm_zone)
    if isinstance(choices, dict):
        choices = {(key or str(_l("All time zones"))): zones for key, zones in choices.items()}
    settings_form.timezone.choices = choices
    if request.method == "GET" and not user.timezone:
        settings_form.timezone.data = firm_zone
    if request.method == "GET" and not user.language:
        settings_form.language.data = str(flask_babel.get_locale())  # what they see now
    password_form = ChangePasswordForm(prefix="pw")
    message, errors = None, []
    if request.method == "POST" and "profile-submit" in request.form:
        if settings_form.validate_on_submit():
            # only these two fields: nothing a portal user posts reaches staff settings (R-SEC-12)
            user.timezone = settings_form.timezone.data
            user.language = settings_form.language.data
            return redirect(url_for("portal.profile", saved=1), code=303)
        refuse_without_csrf(settings_form)
        errors = [e for field_errors in settings_form.errors.values() for e in field_errors]
    elif request.method == "POST":
        if password_form.validate_on_submit():
            try:
                portal_sessions.change_password(
                    user,
                    password_form.current.data or "",
                    password_form.password.data or "",
                    password_form.confirm.data or "",
                )
            except ValidationFailed as exc:
                if "current" in exc.fields:
                    errors = [_("Your current password is not correct.")]
                else:
                    errors = password_errors(exc)
            else:
                start_session(user)  # this session goes on; every other one ended
                return redirect(url_for("portal.profile", password=1), code=303)
        else:
            refuse_without_csrf(password_form)
            errors = [_("Fill in all three password fields.")]
    if request.args.get("saved"):
        message = _("Your settings are saved.")
    elif request.args.get("password"):
        message = _("Your password is changed. You were logged out on your other devices.")
    firm_name, address = firm_and_address(user.firm_id, user.email_id)
    accounts = client_accounts.accessible_accounts(user)
    photo_key = request.args.get("photo_error") or request.args.get("photo")
    return render_template(
        "portal/profile.html",
        settings_form=settings_form,
        password_form=password_form,
        message=message,
        errors=errors,
        firm_name=firm_name,
        address=address,
        accounts=accounts,
        current=next(
            (a for a in accounts if a.id == user.current_account_id), accounts[0] if accounts else None
        ),
        form=ConfirmForm(),
        mfa_method=user.mfa_method,
        passkey_count=passkeys.count(user),
        photo_message=PHOTO_MESSAGES[photo_key]() if photo_key in PHOTO_MESSAGES else None,
        photo_failed=bool(request.args.get("photo_error")),
    ), (422 if errors else 200)


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    user = client_or_401()
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
    user = client_or_401()
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
    user = client_or_401()
    if request.method == "POST":
        if not ConfirmForm().validate_on_submit():
            refuse_expired_form()
        try:
            mfa.begin_totp(user)
        except Conflict:
            db.session.rollback()
            return redirect(url_for("portal.mfa"), code=303)
        return redirect(url_for("portal.mfa_app"), code=303)
    setup = mfa.pending_totp(user)
    if setup is None:
        return redirect(url_for("portal.mfa"), code=303)
    return _page("portal/mfa_app.html", setup=setup, code_form=CodeForm(), error=None)


@bp.post("/portal/mfa/app/confirm")
@limiter.limit(per_ip, scope="portal-ip")
def mfa_app_confirm() -> Any:
    user = client_or_401()
    form = CodeForm()
    if not form.validate_on_submit():
        refuse_without_csrf(form)
        return redirect(url_for("portal.mfa_app"), code=303)
    try:
        codes = mfa.confirm_totp(user, form.code.data or "")
    except ValidationFailed:
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
@limiter.limit(per_ip, methods=["POST"], scope="portal-ip")
def mfa_email() -> Any:
    """POST emails a code to confirm; GET shows the form for it."""
    user = client_or_401()
    if request.method == "POST":
        if not ConfirmForm().validate_on_submit():
            refuse_expired_form()
        try:
            mfa.begin_email(user)
        except Conflict:
            db.session.rollback()
            return redirect(url_for("portal.mfa"), code=303)
        return redirect(url_for("portal.mfa_email"), code=303)
    if mfa.enrolled(user):
        return redirect(url_for("portal.mfa"), code=303)
    return _page("portal/mfa_email.html", code_form=CodeForm(), error=None)


@bp.post("/portal/mfa/email/confirm")
@limiter.limit(per_ip, scope="portal-ip")
def mfa_email_confirm() -> Any:
    user = client_or_401()
    form = CodeForm()
    if not form.validate_on_submit():
        refuse_without_csrf(form)
        return redirect(url_for("portal.mfa_email"), code=303)
    try:
        codes = mfa.confirm_email(user, form.code.data or "")
    except ValidationFailed:
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
    response = make_response(_page("portal/recovery_codes.html", codes=codes))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/portal/mfa/recovery-codes.txt")
def mfa_recovery_download() -> Any:
    """The codes just shown, as a text file. Nothing is kept to serve them again: the page posts
    them back, and only unused codes of this user are written out."""
    user = client_or_401()
    if not ConfirmForm().validate_on_submit():
        refuse_expired_form()
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
@limiter.limit(per_ip, scope="portal-ip")
def mfa_disable() -> Any:
    user = client_or_401()
    form = DisableMfaForm()
    if not form.validate_on_submit():
        refuse_without_csrf(form)
        error = _("Enter your password and a code.")
    else:
        try:
            mfa.disable(user, form.password.data or "", form.code.data or "")
        except (ValidationFailed, Conflict) as exc:
            error = (
                _("Your firm requires two-step sign-in.")
                if isinstance(exc, Conflict)
                else _("The password or the code is not right.")
            )
        else:
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

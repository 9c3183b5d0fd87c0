"""The pages behind emailed links: activation (R-LOG-3, R-LOG-4), "ask for a new invitation",
and the password reset (R-LOG-9). Each link is checked against the database as it is now."""

from __future__ import annotations

from typing import Any

import flask_babel
from flask import Response, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal_app.extensions import db, limiter
from portal_app.jobs.resets import password_reset_requested
from portal_app.models import PortalUser
from portal_app.portal.base import (
    CAN_ASK_AGAIN,
    bp,
    firm_and_address,
    limit_email,
    limit_ip,
    limit_link,
    link_key,
    link_problem_page,
    new_invitation_limit,
    password_errors,
    refuse_expired_form,
    refuse_without_csrf,
)
from portal_app.portal.forms import ConfirmForm, ForgotPasswordForm, NewPasswordForm
from portal_app.portal.sign_in import begin_second_step, sign_in
from portal_app.queue import defer
from portal_app.services import activation, client_passwords, mfa
from portal_app.services.errors import Conflict, ValidationFailed
from portal_app.services.validation import normalise_email


def enter_portal(user: PortalUser) -> Response:
    """After a password is set (activation, reset): store it, then log in afresh; with two factors
    on, the code comes first (a reset link never skips the second step, R-SEC-13)."""
    if mfa.enrolled(user):
        return begin_second_step(user, next_path=None)
    sign_in(user)
    return redirect(url_for("portal.home"))


@bp.route("/portal/activate/<token>", methods=["GET", "POST"])
@limit_ip
@limit_link
def activate(token: str) -> Any:
    check = activation.check_invitation(token)
    if not check.ok:
        assert check.problem is not None
        return link_problem_page(check.problem, token)
    invitation = check.invitation
    assert invitation is not None
    if invitation.language:
        g.language_hint = invitation.language
        flask_babel.refresh()
    firm_name, address = firm_and_address(invitation.firm_id, invitation.email_id)
    form = NewPasswordForm()
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            user = activation.accept_invitation(
                invitation, form.password.data or "", form.confirm.data or ""
            )
        except ValidationFailed as exc:
            errors = password_errors(exc)
        except Conflict:
            db.session.rollback()
            return link_problem_page("used")
        else:
            return enter_portal(user)
    elif request.method == "POST":
        refuse_without_csrf(form)
        errors = [_("Enter your new password twice.")]
    return render_template(
        "portal/activate.html", form=form, firm_name=firm_name, address=address, errors=errors, token=token
    ), (422 if errors else 200)


@bp.post("/portal/activate/<token>/request-new")
@limit_ip
@limiter.limit(new_invitation_limit, key_func=link_key, scope="portal-ask-again")
def request_new_invitation(token: str) -> Any:
    form = ConfirmForm()
    if not form.validate_on_submit():
        refuse_expired_form()
    check = activation.check_invitation(token)
    if check.problem not in CAN_ASK_AGAIN or check.invitation is None:
        return link_problem_page(check.problem or "used")
    activation.request_new_invitation(check.invitation)
    firm_name, _address = firm_and_address(check.invitation.firm_id, check.invitation.email_id)
    return render_template("portal/asked_again.html", firm_name=firm_name)


@bp.route("/portal/password/forgot", methods=["GET", "POST"])
@limit_ip
@limit_email
def forgot_password() -> Any:
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            address = normalise_email(form.email.data or "")
        except ValidationFailed:
            address = ""
        # the same work, answer and time for every address (R-SEC-4): the lookup and the email
        # happen in the job, never in this request
        defer(password_reset_requested, address)
        return render_template("portal/forgot_sent.html")
    refuse_without_csrf(form)
    return render_template("portal/forgot.html", form=form)


@bp.route("/portal/password/reset/<token>", methods=["GET", "POST"])
@limit_ip
@limit_link
def reset_password(token: str) -> Any:
    user, problem = client_passwords.check_reset_token(token)
    if problem is not None or user is None:
        return link_problem_page(problem or "tampered")
    form = NewPasswordForm()
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            client_passwords.set_password(user, form.password.data or "", form.confirm.data or "")
        except ValidationFailed as exc:
            errors = password_errors(exc)
        else:
            return enter_portal(user)
    elif request.method == "POST":
        refuse_without_csrf(form)
        errors = [_("Enter your new password twice.")]
    firm_name, address = firm_and_address(user.firm_id, user.email_id)
    return render_template(
        "portal/reset.html", form=form, firm_name=firm_name, address=address, errors=errors, token=token
    ), (422 if errors else 200)

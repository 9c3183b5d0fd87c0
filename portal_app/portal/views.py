"""Portal routes. Token pages never leak the token onward (Referrer-Policy: no-referrer) and
a GET never changes anything: mail scanners open links before people do (R-LOG-3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import flask_babel
from flask import (
    Response,
    abort,
    current_app,
    g,
    has_request_context,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from portal_app import metrics, timezones
from portal_app.auth import end_session, start_session
from portal_app.extensions import csrf, db, limiter
from portal_app.jobs import defer
from portal_app.jobs.resets import password_reset_requested
from portal_app.models import (
    Account,
    ContactEmail,
    ContactSettings,
    Firm,
    LoginEvent,
    PortalUser,
    Todo,
    new_session_token,
    utcnow,
)
from portal_app.passwords import hash_password, needs_rehash, verify_password
from portal_app.portal import bp, mfa_views
from portal_app.portal.forms import (
    ChangePasswordForm,
    ConfirmForm,
    ForgotPasswordForm,
    LoginForm,
    NewPasswordForm,
    ProfileForm,
)
from portal_app.rate_limits import failed_attempts
from portal_app.services import client_passwords, invitations, mfa, notifications, todos
from portal_app.services.errors import Conflict, ValidationFailed
from portal_app.services.validation import normalise_email, parse_id
from portal_app.tokens import digest
from portal_app.transaction import commit

# --- rate-limit keys (R-SEC-3) -------------------------------------------------------------------


def _posted_email() -> str:
    return "email:" + (request.form.get("email") or "").strip().lower()[:254]


def _link_key() -> str:
    # one key per emailed link (the view's token argument), never the raw token itself
    return "link:" + digest((request.view_args or {}).get("token", ""))[:32]


def _per_ip() -> str:
    return current_app.config["LIMIT_PER_IP"]


def _per_email() -> str:
    return current_app.config["LIMIT_PER_EMAIL"]


def _new_invitation_limit() -> str:
    return current_app.config["LIMIT_NEW_INVITATION"]


limit_ip = limiter.limit(_per_ip, methods=["POST"], scope="portal-ip")
limit_email = limiter.limit(_per_email, key_func=_posted_email, methods=["POST"], scope="portal-email")
# the sign-in itself counts failed passwords only; a success clears the email's count
limit_failed_logins = failed_attempts(_per_email, _posted_email, scope="portal-login", methods=["POST"])
limit_link = limiter.limit(_per_email, key_func=_link_key, methods=["POST"], scope="portal-link")


@bp.after_request
def _no_referrer(response: Response) -> Response:
    # Links in emails carry tokens; no portal page hands its URL to another site (R-SEC-9).
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.view_args and "token" in request.view_args:
        response.headers["Cache-Control"] = "no-store"
    return response


KIND_LABELS = {
    "documents_upload": _l("Documents to upload"),
    "documents_signature": _l("Documents to sign"),
    "documents_approval": _l("Documents to approve"),
    "messages_tasks": _l("Messages and tasks"),
    "proposals": _l("Proposals"),
    "organizers": _l("Organizers"),
    "invoices_payments": _l("Invoices and payments"),
    "client_requests": _l("Requests"),
    "transactions": _l("Transactions"),
}


# --- helpers -----------------------------------------------------------------------------------


def portal_user() -> PortalUser | None:
    user = current_user._get_current_object() if current_user.is_authenticated else None
    return user if isinstance(user, PortalUser) else None


@bp.app_context_processor
def default_firm_name() -> dict[str, Any]:
    """The firm's name on every page: the user's firm, else the only firm this installation
    serves, else the product's name. A page that knows better passes `firm_name` itself."""

    def lookup() -> str:
        user = portal_user()
        if user is not None:
            return user.firm.name  # loaded with the user
        names = db.session.scalars(select(Firm.name).limit(2)).all()
        return names[0] if len(names) == 1 else "Portico"

    if not has_request_context():
        return {}  # emails name their firm themselves
    if "default_firm_name" not in g:
        try:
            g.default_firm_name = lookup()
        except SQLAlchemyError:  # an error page while the database is unwell still renders
            db.session.rollback()
            g.default_firm_name = "Portico"
    return {"firm_name": g.default_firm_name, "signed_in_client": _signed_in_client}


def _signed_in_client() -> PortalUser | None:
    """For pages outside the portal's own views (errors): the client signed in, if any, so they
    keep their header and a way to log out."""
    try:
        return portal_user()
    except SQLAlchemyError:
        db.session.rollback()
        return None


def accounts_with_open_counts(user: PortalUser) -> list[tuple[Account, int]]:
    """``accessible_accounts`` with each account's number of open to-dos, in the same query."""
    open_count = (
        select(func.count())
        .where(Todo.account_id == Account.id, Todo.state == "open")
        .correlate(Account)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(Account, open_count)
        .join(ContactSettings, ContactSettings.account_id == Account.id)
        .where(ContactSettings.email_id == user.email_id, ContactSettings.login.is_(True))
        .order_by(Account.name, Account.id)
    ).all()
    return [(account, count) for account, count in rows]


def accessible_accounts(user: PortalUser) -> list[Account]:
    """Every account on which this user's email has login on, by name (R-LOG-3, R-LOG-7)."""
    return list(
        db.session.scalars(
            select(Account)
            .join(ContactSettings, ContactSettings.account_id == Account.id)
            .where(ContactSettings.email_id == user.email_id, ContactSettings.login.is_(True))
            .order_by(Account.name, Account.id)
        )
    )


def safe_next(target: str | None) -> str | None:
    """Only a local path may be a redirect target (R-SEC-8)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _record_login(user: PortalUser) -> None:
    user.last_login_at = utcnow()
    db.session.add(
        LoginEvent(
            firm_id=user.firm_id,
            portal_user_id=user.id,
            ip_address=(request.remote_addr or "")[:64],
            user_agent=(request.user_agent.string or "")[:300],
        )
    )


def _password_errors(exc: ValidationFailed) -> list[str]:
    db.session.rollback()
    return list(exc.fields.get("password", [exc.message]))


def _enter_portal(user: PortalUser) -> Response:
    """After a password is set (activation, reset): store it, then log in afresh; with two factors
    on, the code comes first (a reset link never skips the second step, R-SEC-13)."""
    commit()
    if mfa.enrolled(user):
        return mfa_views.begin_second_step(user, next_path=None)
    start_session(user)
    _record_login(user)
    commit()
    return redirect(url_for("portal.home"))


def _firm_and_address(firm_id: int, email_id: int) -> tuple[str, str]:
    firm_name = db.session.scalar(select(Firm.name).where(Firm.id == firm_id)) or ""
    address = db.session.scalar(select(ContactEmail.address).where(ContactEmail.id == email_id)) or ""
    return firm_name, address


LINK_PROBLEMS = {
    "tampered": (400, _l("This link is not valid. Please use the link exactly as it is in the email.")),
    "expired": (410, _l("This invitation has expired.")),
    "used": (410, _l("This link has already been used. If you set your password, please log in.")),
    "revoked": (410, _l("This invitation was withdrawn by your firm.")),
    "replaced": (
        410,
        _l("A newer invitation was sent to you. Please use the link in the most recent email."),
    ),
    "email_changed": (
        410,
        _l("This invitation was deactivated for security reasons: the email address changed."),
    ),
    "login_off": (410, _l("Portal access for this email is currently switched off by your firm.")),
}
# The problems where asking the firm for a fresh link makes sense (R-LOG-4).
CAN_ASK_AGAIN = {"expired", "replaced"}


def link_problem_page(problem: str, token: str | None = None) -> tuple[str, int]:
    status, message = LINK_PROBLEMS[problem]
    can_ask = token is not None and problem in CAN_ASK_AGAIN
    return (
        render_template(
            "portal/link_problem.html",
            problem=problem,
            message=message,
            can_ask=can_ask,
            token=token,
            form=ConfirmForm(),
        ),
        status,
    )


def refuse_without_csrf(form: Any) -> None:
    """A POST whose CSRF token is missing or wrong changes nothing and says why (R-SEC-2)."""
    if request.method == "POST" and form.meta.csrf and "csrf_token" in form.errors:
        abort(400, _("This form has expired or was not sent from this site. Reload the page and try again."))


# --- pages -------------------------------------------------------------------------------------


@bp.get("/")
def index() -> Any:
    if portal_user() is not None:
        return redirect(url_for("portal.home"))
    return render_template("index.html")


@bp.get("/favicon.ico")
def favicon() -> Any:
    icon = Path(current_app.static_folder or "static", "favicon.ico").read_bytes()  # 158 bytes
    return Response(
        icon, mimetype="image/vnd.microsoft.icon", headers={"Cache-Control": "public, max-age=86400"}
    )


@bp.after_request
def htmx_navigates_instead_of_swapping(response: Response) -> Response:
    """htmx swaps what it receives into #portal. A redirect (to log in, after a timeout) or a
    refusal (an account that just became unreachable) must not end up inside a stale page:
    htmx is told to load the page in full (HX-Redirect), which shows the current state."""
    if not request.headers.get("HX-Request"):
        return response
    response.vary.add("HX-Request")
    if response.status_code in (301, 302, 303, 307, 308):
        target = response.headers.pop("Location")
        response.status_code = 200
        response.set_data(b"")
        response.headers["HX-Redirect"] = target
    elif response.status_code in (403, 404):
        response.headers["HX-Redirect"] = url_for("portal.home")
    return response


def _needs_login() -> Response:
    return redirect(url_for("portal.login", next=request.full_path.rstrip("?")))


@bp.get("/portal/")
def home() -> Any:
    """The current account's home; every request re-checks access (R-POR-3, R-LOG-7)."""
    user = portal_user()
    if user is None:
        return _needs_login()
    accounts = accessible_accounts(user)
    if not accounts:
        return render_template("portal/no_access.html", form=ConfirmForm()), 403
    current = next((a for a in accounts if a.id == user.current_account_id), accounts[0])
    return redirect(url_for("portal.account_home", account_id=current.id))


@bp.get("/portal/a/<int:account_id>/")
def account_home(account_id: int) -> Any:
    user = portal_user()
    if user is None:
        return _needs_login()
    with_counts = accounts_with_open_counts(user)
    accounts = [account for account, _count in with_counts]
    current = next((a for a in accounts if a.id == account_id), None)
    if current is None:
        if not accounts:
            return render_template("portal/no_access.html", form=ConfirmForm()), 403
        abort(404)  # never reveal whether the account exists (R-SEC-1)
    if user.current_account_id != current.id:
        user.current_account_id = current.id  # remembered for the next visit; no data changes
        commit()
    completed = _just_completed(current.id, request.args.get("completed"))
    return _render_account(
        user, accounts, current, counts={a.id: count for a, count in with_counts}, completed=completed
    )


def _just_completed(account_id: int, value: str | None) -> Todo | None:
    """The to-do a redirect after completing one names, to thank for it (only a done one of
    this account)."""
    todo_id = parse_id(value)
    if todo_id is None:
        return None
    return db.session.scalar(
        select(Todo).where(Todo.id == todo_id, Todo.account_id == account_id, Todo.state == "done")
    )


def _account_or_404(user: PortalUser, account_id: int) -> tuple[list[Account], Account]:
    """The user's accounts and this one among them; 404 when it is not theirs (R-POR-3)."""
    accounts = accessible_accounts(user)
    current = next((a for a in accounts if a.id == account_id), None)
    if current is None:
        abort(404)
    return accounts, current


@bp.route("/portal/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
@limit_ip
def unsubscribe(token: str) -> Any:
    """One-click unsubscribe (RFC 8058). The signed link is the credential, so the POST carries
    no CSRF token (mail providers POST ``List-Unsubscribe=One-Click`` without cookies); it only
    ever switches one notification category off. A GET changes nothing: it asks."""
    link = notifications.read_unsubscribe(token)
    if link is None:
        return link_problem_page("tampered")
    g.language_hint = _language_of(link.email.id)
    flask_babel.refresh()
    firm_name = (
        db.session.scalar(
            select(Firm.name)
            .join(Account, Account.firm_id == Firm.id)
            .where(Account.id.in_([row.account_id for row in link.settings]))
        )
        if link.settings
        else None
    )
    context = {
        "address": link.email.address,
        "category": notifications.CATEGORY_LABELS[link.category],
        "accounts": link.accounts,
        "firm_name": firm_name or "Portico",
        "token": token,
        "done": False,
    }
    if request.method == "POST":
        notifications.unsubscribe(link)
        commit()
        context["done"] = True
    response = make_response(render_template("portal/unsubscribe.html", **context))
    response.headers["Cache-Control"] = "no-store"
    return response


def _language_of(email_id: int) -> str | None:
    return db.session.scalar(select(PortalUser.language).where(PortalUser.email_id == email_id))


@bp.post("/portal/switch")
def switch_account() -> Any:
    """The account picker without JavaScript: a form POST, then a redirect."""
    user = portal_user()
    if user is None:
        return _needs_login()
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, _("This form has expired. Please reload the page and try again."))
    wanted = parse_id(request.form.get("account_id"))
    accounts = accessible_accounts(user)
    current = next((a for a in accounts if a.id == wanted), None)
    if current is None:
        abort(404)
    user.current_account_id = current.id
    commit()
    if request.headers.get("HX-Request"):
        response = _render_account(user, accounts, current)
        response.headers["HX-Push-Url"] = url_for("portal.account_home", account_id=current.id)
        return response
    return redirect(url_for("portal.account_home", account_id=current.id), code=303)


def _render_account(
    user: PortalUser,
    accounts: list[Account],
    current: Account,
    *,
    counts: dict[int, int] | None = None,
    completed: Todo | None = None,
) -> Response:
    if counts is None:
        counts = todos.open_counts([a.id for a in accounts])
    open_rows, done_rows = todos.account_page_todos(current.id)
    items = todos.client_view(user, current.id, open_rows)
    reading = [i.todo.id for i in items if i.action in ("sign", "approve") and i.todo.document_count]
    to_read = todos.documents_of(reading) if reading else {}
    groups: dict[str, list[Any]] = {}
    for item in items:
        groups.setdefault(item.todo.kind, []).append(item)
    firm_name, address = user.firm.name, user.email.address  # loaded with the user
    g.default_firm_name = firm_name  # the layout's name, without a second lookup
    context = {
        "accounts": accounts,
        "current": current,
        "groups": groups,
        "others": [(a, counts.get(a.id, 0)) for a in accounts if a.id != current.id],
        "firm_name": firm_name,
        "address": address,
        "form": ConfirmForm(),
        "today": utcnow().date(),
        "kind_labels": KIND_LABELS,
        "completed": completed,
        "documents": to_read,
        "done": done_rows,
    }
    # htmx asks for the swapped part only; the same URL serves the full page otherwise
    template = "portal/_account.html" if request.headers.get("HX-Request") else "portal/home.html"
    response = make_response(render_template(template, **context))
    response.headers["Vary"] = "HX-Request, Cookie"
    return response


@bp.route("/portal/profile", methods=["GET", "POST"])
def profile() -> Any:
    user = portal_user()
    if user is None:
        return _needs_login()
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
            commit()
            return redirect(url_for("portal.profile", saved=1), code=303)
        refuse_without_csrf(settings_form)
        errors = [e for field_errors in settings_form.errors.values() for e in field_errors]
    elif request.method == "POST":
        if password_form.validate_on_submit():
            if not verify_password(user.password_hash, password_form.current.data or ""):
                errors = [_("Your current password is not correct.")]
            else:
                try:
                    client_passwords.set_password(
                        user, password_form.password.data or "", password_form.confirm.data or ""
                    )
                except ValidationFailed as exc:
                    errors = _password_errors(exc)
                else:
                    commit()
                    start_session(user)  # this session goes on; every other one ended
                    return redirect(url_for("portal.profile", password=1), code=303)
        else:
            refuse_without_csrf(password_form)
            errors = [_("Fill in all three password fields.")]
    if request.args.get("saved"):
        message = _("Your settings are saved.")
    elif request.args.get("password"):
        message = _("Your password is changed. You were logged out on your other devices.")
    firm_name, address = _firm_and_address(user.firm_id, user.email_id)
    accounts = accessible_accounts(user)
    return render_template(
        "portal/profile.html",
        settings_form=settings_form,
        password_form=password_form,
        message=message,
        errors=errors,
        firm_name=firm_name,
        address=address,
        accounts=accounts,
        current=next((a for a in accounts if a.id == user.current_account_id), None),
        form=ConfirmForm(),
        mfa_method=user.mfa_method,
    ), (422 if errors else 200)


@bp.route("/portal/login", methods=["GET", "POST"])
@limit_ip
@limit_failed_logins
def login() -> Any:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    error = None
    if form.validate_on_submit():
        user = _authenticate(form.email.data or "", form.password.data or "")
        metrics.SIGN_INS.labels("client", "failed" if user is None else "succeeded").inc()
        if user is not None and mfa.enrolled(user):
            return mfa_views.begin_second_step(user, next_path=safe_next(form.next.data))
        if user is not None:
            start_session(user)
            _record_login(user)
            commit()
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
    return render_template("portal/login.html", form=form, error=error, notice=notice), (
        401 if error else 200
    )


def _authenticate(email: str, password: str) -> PortalUser | None:
    """Same answer and one argon2 verification whether or not the email is known (R-SEC-4)."""
    try:
        address = normalise_email(email)
    except ValidationFailed:
        address = ""
    candidates = (
        db.session.scalars(
            select(PortalUser)
            .join(ContactEmail, ContactEmail.id == PortalUser.email_id)
            .where(ContactEmail.address == address, PortalUser.activated_at.is_not(None))
            .order_by(PortalUser.id)
        ).all()
        if address
        else []
    )
    if not candidates:
        verify_password(None, password)  # spend the same time as a real check
        return None
    for user in candidates:  # one per firm the address is a client of
        if verify_password(user.password_hash, password) and user.is_active:
            if needs_rehash(user.password_hash or ""):
                user.password_hash = hash_password(password)
            return user
    return None


@bp.post("/portal/logout")
def logout() -> Any:
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, _("This form has expired. Please reload the page and try again."))
    user = portal_user()
    if user is not None:
        user.session_token = new_session_token()  # ends this user's other sessions too (R-SEC-5)
        commit()
    end_session()
    return redirect(url_for("portal.login"))


@bp.route("/portal/activate/<token>", methods=["GET", "POST"])
@limit_ip
@limit_link
def activate(token: str) -> Any:
    check = invitations.check_invitation(token)
    if not check.ok:
        assert check.problem is not None
        return link_problem_page(check.problem, token)
    invitation = check.invitation
    assert invitation is not None
    if invitation.language:
        g.language_hint = invitation.language
        flask_babel.refresh()
    firm_name, address = _firm_and_address(invitation.firm_id, invitation.email_id)
    form = NewPasswordForm()
    errors: list[str] = []
    if form.validate_on_submit():
        try:
            user = invitations.accept_invitation(
                invitation, form.password.data or "", form.confirm.data or ""
            )
        except ValidationFailed as exc:
            errors = _password_errors(exc)
        except Conflict:
            db.session.rollback()
            return link_problem_page("used")
        else:
            return _enter_portal(user)
    elif request.method == "POST":
        refuse_without_csrf(form)
        errors = [_("Enter your new password twice.")]
    return render_template(
        "portal/activate.html", form=form, firm_name=firm_name, address=address, errors=errors, token=token
    ), (422 if errors else 200)


@bp.post("/portal/activate/<token>/request-new")
@limit_ip
@limiter.limit(_new_invitation_limit, key_func=_link_key, scope="portal-ask-again")
def request_new_invitation(token: str) -> Any:
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, _("This form has expired. Please reload the page and try again."))
    check = invitations.check_invitation(token)
    if check.problem not in CAN_ASK_AGAIN or check.invitation is None:
        return link_problem_page(check.problem or "used")
    invitations.request_new_invitation(check.invitation)
    commit()
    firm_name, _address = _firm_and_address(check.invitation.firm_id, check.invitation.email_id)
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
        commit()
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
            errors = _password_errors(exc)
        else:
            return _enter_portal(user)
    elif request.method == "POST":
        refuse_without_csrf(form)
        errors = [_("Enter your new password twice.")]
    firm_name, address = _firm_and_address(user.firm_id, user.email_id)
    return render_template(
        "portal/reset.html", form=form, firm_name=firm_name, address=address, errors=errors, token=token
    ), (422 if errors else 200)

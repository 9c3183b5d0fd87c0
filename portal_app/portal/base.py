"""What every portal page shares: who is signed in, the rate limits (R-SEC-3), the headers
token pages need (R-SEC-9), the two-factor gate (R-SEC-13), the link-problem page, and the
answers htmx and a browser without JavaScript both understand.

Token pages never leak the token onward (Referrer-Policy: no-referrer) and a GET never changes
anything: mail scanners open links before people do (R-LOG-3).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from portal_app.extensions import db, limiter
from portal_app.models import ContactEmail, Firm, PortalUser
from portal_app.portal.forms import ConfirmForm
from portal_app.rate_limits import failed_attempts
from portal_app.services import mfa
from portal_app.services.errors import ValidationFailed
from portal_app.tokens import digest

bp = Blueprint("portal", __name__)

# --- rate-limit keys (R-SEC-3) -------------------------------------------------------------------


def _posted_email() -> str:
    return "email:" + (request.form.get("email") or "").strip().lower()[:254]


def link_key() -> str:
    # one key per emailed link (the view's token argument), never the raw token itself
    return "link:" + digest((request.view_args or {}).get("token", ""))[:32]


def per_ip() -> str:
    return current_app.config["LIMIT_PER_IP"]


def per_email() -> str:
    return current_app.config["LIMIT_PER_EMAIL"]


def new_invitation_limit() -> str:
    return current_app.config["LIMIT_NEW_INVITATION"]


limit_ip = limiter.limit(per_ip, methods=["POST"], scope="portal-ip")
limit_email = limiter.limit(per_email, key_func=_posted_email, methods=["POST"], scope="portal-email")
# the sign-in itself counts failed passwords only; a success clears the email's count
limit_failed_logins = failed_attempts(per_email, _posted_email, scope="portal-login", methods=["POST"])
limit_link = limiter.limit(per_email, key_func=link_key, methods=["POST"], scope="portal-link")


# --- who is signed in ----------------------------------------------------------------------------


def portal_user() -> PortalUser | None:
    user = current_user._get_current_object() if current_user.is_authenticated else None
    return user if isinstance(user, PortalUser) else None


def client_page(view: Callable[..., Any]) -> Callable[..., Any]:
    """A page of a signed-in client: the view gets the user first; anyone else logs in first."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = portal_user()
        if user is None:
            return needs_login()
        return view(user, *args, **kwargs)

    return wrapper


def needs_login() -> Response:
    return redirect(url_for("portal.login", next=request.full_path.rstrip("?")))


def client_or_401() -> PortalUser:
    """The signed-in client; anyone else gets the 401 that sends them to log in."""
    user = current_user._get_current_object() if current_user.is_authenticated else None
    if not isinstance(user, PortalUser):
        abort(401)
    return user


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


@bp.before_app_request
def enrolment_gate() -> Response | None:
    """R-SEC-13: a client whose firm requires two factors, and who has none, is led to enrol
    before any page with account data."""
    if not request.path.startswith("/portal/") or request.endpoint in ENROLMENT_ENDPOINTS:
        return None
    if request.path.startswith("/portal/link/"):
        return None  # an emailed link acts for its own email, not for whoever is signed in
    user = current_user._get_current_object() if current_user.is_authenticated else None
    if not isinstance(user, PortalUser) or not mfa.must_enrol(user):
        return None
    if isinstance(session.get("mfa_at"), int):
        return None  # this session passed two factors with a passkey (R-SEC-15)
    return redirect(url_for("portal.mfa"), code=303)


@bp.errorhandler(401)
def _login_on_401(_error: Exception) -> Response:
    return redirect(url_for("portal.login", next=request.path))


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


# --- answers -------------------------------------------------------------------------------------


@bp.after_request
def _no_referrer(response: Response) -> Response:
    # Links in emails carry tokens; no portal page hands its URL to another site (R-SEC-9).
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.view_args and "token" in request.view_args:
        response.headers["Cache-Control"] = "no-store"
    return response


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


def safe_next(target: str | None) -> str | None:
    """Only a local path may be a redirect target (R-SEC-8)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def password_errors(exc: ValidationFailed) -> list[str]:
    db.session.rollback()
    return list(exc.fields.get("password", [exc.message]))


def firm_and_address(firm_id: int, email_id: int) -> tuple[str, str]:
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


def refuse_expired_form() -> None:
    """A button's form without a valid CSRF token: a 400 page that says what to do."""
    abort(400, _("This form has expired. Please reload the page and try again."))


# --- the two pages outside the portal ------------------------------------------------------------


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

"""Staff authentication: session login for the SPA, bearer tokens, CSRF on cookie calls."""

from __future__ import annotations

from flask import Flask, abort, current_app, g, request, session
from flask.views import MethodView
from flask_login import current_user, logout_user
from flask_smorest import Blueprint
from flask_wtf.csrf import generate_csrf

from portal_app.auth import start_session
from portal_app.extensions import csrf, db, limiter
from portal_app.models import StaffUser, new_session_token
from portal_app.services.errors import DomainError
from portal_app.services.staff import authenticate_staff, staff_for_api_token
from portal_app.transaction import commit
from staff_api.schemas import ErrorSchema, LoginSchema, SessionSchema

blp = Blueprint("auth", __name__, description="Staff sessions for the single-page app.")

PUBLIC_ENDPOINTS = frozenset({"auth.Login", "api-docs.openapi_json"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


def current_staff() -> StaffUser:
    """The staff user of this API request (set by ``authenticate_api_request``)."""
    return g.staff


def authenticate_api_request() -> None:
    """Before every /api/v1 request: who is calling, and may a cookie call go ahead?"""
    if not request.path.startswith("/api/v1/") or request.endpoint in PUBLIC_ENDPOINTS:
        return
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        staff = staff_for_api_token(token.strip()) if scheme.lower() == "bearer" else None
        if staff is None:
            raise Unauthorized("The API token is missing, malformed or revoked.")
        g.staff, g.auth_method = staff, "token"
        if db.session.dirty:
            commit()  # records last_used_at
        return
    user = current_user._get_current_object() if current_user.is_authenticated else None
    if not isinstance(user, StaffUser):
        raise Unauthorized("Log in first (POST /api/v1/auth/login) or send a bearer token.")
    if request.method in UNSAFE_METHODS:
        csrf.protect()  # cookie-authenticated unsafe calls need X-CSRFToken (R-SEC-2)
    g.staff, g.auth_method = user, "session"


def staff_payload(user: StaffUser) -> dict:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "firm": {"id": str(user.firm.id), "name": user.firm.name},
    }


def _login_email_key() -> str:
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return "staff-email:" + (email.strip().lower()[:254] if isinstance(email, str) else "")


@blp.route("/login")
class Login(MethodView):
    # R-SEC-3: per IP and per email, like the portal's login
    decorators = [
        limiter.limit(lambda: current_app.config["LIMIT_PER_IP"], methods=["POST"], scope="staff-ip"),
        limiter.limit(
            lambda: current_app.config["LIMIT_PER_EMAIL"],
            key_func=_login_email_key,
            methods=["POST"],
            scope="staff-email",
        ),
    ]

    @blp.arguments(LoginSchema)
    @blp.response(200, SessionSchema)
    @blp.alt_response(401, schema=ErrorSchema, description="Wrong email or password.")
    @blp.alt_response(415, schema=ErrorSchema, description="The body is not JSON.")
    @blp.alt_response(429, schema=ErrorSchema, description="Too many attempts; see Retry-After.")
    @blp.doc(security=[])
    def post(self, credentials: dict) -> dict:
        """Log in with email and password; answers the CSRF token for unsafe calls."""
        if not request.is_json:
            abort(415, "Send the credentials as application/json.")
        user = authenticate_staff(credentials["email"], credentials["password"])
        if user is None:
            raise Unauthorized("The email or password is not correct.", code="invalid_credentials")
        start_session(user)  # a fresh session at login (R-SEC-5), with its timeouts
        commit()
        return {"user": staff_payload(user), "csrf_token": generate_csrf()}


@blp.route("/logout")
class Logout(MethodView):
    @blp.response(204)
    @blp.alt_response(401, schema=ErrorSchema)
    def post(self) -> None:
        """End this session and every other session of the staff user (R-SEC-5)."""
        staff = current_staff()
        if g.auth_method == "session":
            staff.session_token = new_session_token()
            commit()
            logout_user()
            session.clear()


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, SessionSchema)
    @blp.alt_response(401, schema=ErrorSchema)
    def get(self) -> dict:
        """The logged-in staff user and a CSRF token for unsafe calls."""
        return {"user": staff_payload(current_staff()), "csrf_token": generate_csrf()}


def init_app(app: Flask) -> None:
    app.before_request(authenticate_api_request)

"""Staff authentication: session login for the SPA, bearer tokens, CSRF on cookie calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, request, session
from flask.views import MethodView
from flask_login import current_user, logout_user
from flask_smorest import Blueprint
from flask_wtf.csrf import generate_csrf

from portal_app import metrics, replica
from portal_app.auth import start_session
from portal_app.extensions import csrf, limiter
from portal_app.models import StaffUser, new_session_token, utcnow
from portal_app.rate_limits import failed_attempts
from portal_app.services import mfa, staff_challenge
from portal_app.services.errors import DomainError
from portal_app.services.staff import authenticate_staff, staff_for_api_token
from staff_api.schemas import ErrorSchema
from staff_api.staff_schemas import (
    LoginAnswerSchema,
    LoginMfaSchema,
    LoginSchema,
    MfaCodeSchema,
    MfaPasswordCodeSchema,
    MfaSetupSchema,
    RecoveryCodesSchema,
    SessionSchema,
)

T = TypeVar("T")
blp = Blueprint("auth", __name__, description="Staff sessions for the single-page app.")

# Endpoints that authenticate themselves: the two sign-in steps, and inbound mail with the
# firm's inbound secret as its bearer token.
PUBLIC_ENDPOINTS = frozenset(
    {
        "auth.Login",
        "auth.LoginMfa",
        "passkeys.LoginOptions",
        "passkeys.LoginVerify",
        "mail.InboundEmail",
        "api-docs.openapi_json",
        "api-reference.page",
    }
)
# What a staff user whose firm requires two factors, and who has none, may still call.
ENROLMENT_ENDPOINTS = frozenset({"auth.Me", "auth.Logout", "auth.MfaSetup", "auth.MfaConfirm"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class RecentSignInRequired(DomainError):
    status = 403
    code = "recent_sign_in_required"


# Enrolling, turning off and replacing recovery codes change how the owner signs in: only the
# owner, signed in with the password a moment ago, may do it. A bearer token (possibly stolen)
# never can: a thief would lock the owner out behind a secret the thief holds (R-SEC-13).
RECENT_SIGN_IN_SECONDS = 10 * 60
RECENT_ONLY = "API tokens never; a session only within 10 minutes of its password sign-in."


def require_recent_sign_in() -> None:
    if g.get("auth_method") != "session":
        raise RecentSignInRequired(
            "Two-factor settings change only in a session signed in with the password, not with "
            "an API token. Sign in (POST /auth/login) and try again."
        )
    signed_in_at = session.get("auth_at")
    if not isinstance(signed_in_at, int) or time.time() - signed_in_at > RECENT_SIGN_IN_SECONDS:
        raise RecentSignInRequired(
            "Sign in again with your password (POST /auth/login) to change two-factor settings: "
            "the last sign-in was more than 10 minutes ago."
        )


class MfaEnrolmentRequired(DomainError):
    status = 403
    code = "mfa_enrollment_required"


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
        g.staff, g.auth_method = staff, "token"  # last_used_at goes into the request's commit
        _enrolment_gate(staff)
        _note_write(staff)
        return
    user = current_user._get_current_object() if current_user.is_authenticated else None
    if not isinstance(user, StaffUser):
        raise Unauthorized("Log in first (POST /api/v1/auth/login) or send a bearer token.")
    if request.method in UNSAFE_METHODS:
        csrf.protect()  # cookie-authenticated unsafe calls need X-CSRFToken (R-SEC-2)
    g.staff, g.auth_method = user, "session"
    _enrolment_gate(user)
    _note_write(user)


def _note_write(user: StaffUser) -> None:
    """R-OPS-3: with a read replica, a write marks its author, whose reads then go to the primary
    for a while; it commits with the write, or not at all."""
    if request.method in UNSAFE_METHODS and replica.configured():
        user.last_write_at = utcnow()


def staff_read(read: Callable[[], T]) -> T:
    """A read the replica may serve (the account list, search, the overview), unless this staff
    user wrote in the last few seconds (read-your-writes)."""
    return replica.from_replica(read, last_write_at=current_staff().last_write_at)


def _enrolment_gate(user: StaffUser) -> None:
    """R-SEC-13: the firm requires two factors and this user has none: enrolment only."""
    if request.endpoint not in ENROLMENT_ENDPOINTS and must_enrol_now(user):
        raise MfaEnrolmentRequired(
            "Your firm requires two-factor sign-in. Set it up first: POST /api/v1/auth/mfa/setup, "
            "then POST /api/v1/auth/mfa/confirm with the first code."
        )


def passed_two_factors() -> bool:
    """This request's session signed in with two factors (bearer tokens never count)."""
    return g.get("auth_method") == "session" and isinstance(session.get("mfa_at"), int)


def must_enrol_now(user: StaffUser) -> bool:
    """The firm requires two factors, this user has no second factor, and this session did not
    pass two factors another way (a passkey sign-in counts as two, R-SEC-15)."""
    return mfa.must_enrol(user) and not passed_two_factors()


def session_answer(user: StaffUser) -> dict:
    return {
        "user": staff_payload(user),
        "csrf_token": generate_csrf(),
        "mfa_enrollment_required": must_enrol_now(user),
    }


def start_two_factor_session(user: StaffUser) -> None:
    """A new session (rotated: cleared and re-issued, new CSRF token) that passed two factors."""
    start_session(user)
    session["mfa_at"] = int(time.time())
    g.staff, g.auth_method = user, "session"


def staff_payload(user: StaffUser) -> dict:
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "firm": {"id": str(user.firm.id), "name": user.firm.name},
        "mfa_enabled": mfa.enrolled(user),
        "active": user.is_active,
    }


def sign_in_limits(scope: str, per_user: Any) -> list[Any]:
    """Per IP every attempt, per user (``per_user`` names the user from the request) failed
    attempts only, like the portal's login (R-SEC-3); the two sign-in steps count apart."""
    per_email = "staff-email" if scope == "staff" else f"{scope}-user"
    return [
        limiter.limit(lambda: current_app.config["LIMIT_PER_IP"], methods=["POST"], scope=f"{scope}-ip"),
        failed_attempts(
            lambda: current_app.config["LIMIT_PER_EMAIL"], per_user, scope=per_email, methods=["POST"]
        ),
    ]


def _login_email_key() -> str:
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return "staff-email:" + (email.strip().lower()[:254] if isinstance(email, str) else "")


@blp.route("/login")
class Login(MethodView):
    # R-SEC-3: per IP and per email, like the portal's login
    decorators = sign_in_limits("staff", _login_email_key)

    @blp.arguments(LoginSchema)
    @blp.response(200, LoginAnswerSchema)
    @blp.alt_response(401, schema=ErrorSchema, description="Wrong email or password.")
    @blp.alt_response(415, schema=ErrorSchema, description="The body is not JSON.")
    @blp.alt_response(429, schema=ErrorSchema, description="Too many attempts; see Retry-After.")
    @blp.doc(security=[])
    def post(self, credentials: dict) -> dict:
        """Log in with email and password. Answers the session and its CSRF token, or, when two
        factors are on, `{"mfa_required": true, "mfa_token": …}` for POST /auth/login/mfa."""
        if not request.is_json:
            abort(415, "Send the credentials as application/json.")
        user = authenticate_staff(credentials["email"], credentials["password"])
        metrics.SIGN_INS.labels("staff", "failed" if user is None else "succeeded").inc()
        if user is None:
            raise Unauthorized("The email or password is not correct.", code="invalid_credentials")
        if mfa.enrolled(user):
            token = staff_challenge.issue_challenge(user)
            return {"mfa_required": True, "mfa_token": token}
        start_session(user)  # a fresh session at login (R-SEC-5), with its timeouts
        return session_answer(user)


def _mfa_token_key() -> str:
    body = request.get_json(silent=True)
    token = body.get("mfa_token") if isinstance(body, dict) else None
    return staff_challenge.challenge_subject(token) if isinstance(token, str) else "mfa-user:none"


@blp.route("/login/mfa")
class LoginMfa(MethodView):
    # code entry is rate limited like login: per IP and per user (R-SEC-13)
    decorators = sign_in_limits("staff-mfa", _mfa_token_key)

    @blp.arguments(LoginMfaSchema)
    @blp.response(200, SessionSchema)
    @blp.alt_response(401, schema=ErrorSchema, description="The mfa_token or the code is not valid.")
    @blp.alt_response(429, schema=ErrorSchema, description="Too many attempts; see Retry-After.")
    @blp.doc(security=[])
    def post(self, data: dict) -> dict:
        """The second step: the `mfa_token` from /auth/login and a code from the app (each code works
        once) or a recovery code. Starts a new session that passed two factors."""
        user = staff_challenge.challenge_user(data["mfa_token"])
        if user is None:
            raise Unauthorized(
                "The sign-in has expired or was already used. Log in again.", code="invalid_mfa_token"
            )
        if mfa.verify(user, data["code"]) is None:
            metrics.SIGN_INS.labels("staff", "failed").inc()
            raise Unauthorized("That code is not right.", code="invalid_code")
        metrics.SIGN_INS.labels("staff", "succeeded").inc()
        user.mfa_challenge = None  # the token is spent
        start_two_factor_session(user)
        return session_answer(user)


@blp.route("/mfa/setup")
class MfaSetup(MethodView):
    @blp.response(200, MfaSetupSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Two factors are already on.")
    @blp.alt_response(403, schema=ErrorSchema, description=RECENT_ONLY)
    def post(self) -> dict:
        """Start enrolling an authenticator app: the `otpauth://` URI, its key and a QR code (SVG).
        Nothing changes for sign-in until POST /auth/mfa/confirm. Needs a session signed in with
        the password in the last 10 minutes (never an API token)."""
        require_recent_sign_in()
        setup = mfa.begin_totp(current_staff())
        return {"otpauth_uri": setup.uri, "secret": setup.secret, "qr_svg": setup.qr_svg}


@blp.route("/mfa/confirm")
class MfaConfirm(MethodView):
    @blp.arguments(MfaCodeSchema)
    @blp.response(200, RecoveryCodesSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Not started, or already on.")
    @blp.alt_response(422, schema=ErrorSchema, description="The code is not right.")
    @blp.alt_response(403, schema=ErrorSchema, description=RECENT_ONLY)
    def post(self, data: dict) -> dict:
        """Confirm the app with its first code: two factors are on. Answers 10 recovery codes, shown
        this once, and a new session (and CSRF token) that passed two factors. Needs a recent
        password sign-in, like setup."""
        require_recent_sign_in()
        user = current_staff()
        codes = mfa.confirm_totp(user, data["code"])
        answer: dict = {"recovery_codes": codes}
        start_two_factor_session(user)
        answer["csrf_token"] = generate_csrf()
        return answer


@blp.route("/mfa")
class MfaFactor(MethodView):
    @blp.arguments(MfaPasswordCodeSchema)
    @blp.response(204)
    @blp.alt_response(409, schema=ErrorSchema, description="Not on, or the firm requires it.")
    @blp.alt_response(422, schema=ErrorSchema, description="Wrong password or code.")
    @blp.alt_response(403, schema=ErrorSchema, description=RECENT_ONLY)
    def delete(self, data: dict) -> None:
        """Turn two factors off, with the password and a code, in a recent session."""
        require_recent_sign_in()
        mfa.disable(current_staff(), data["password"], data["code"])


@blp.route("/mfa/recovery-codes")
class MfaRecoveryCodes(MethodView):
    @blp.arguments(MfaPasswordCodeSchema)
    @blp.response(200, RecoveryCodesSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="Two factors are not on.")
    @blp.alt_response(422, schema=ErrorSchema, description="Wrong password or code.")
    @blp.alt_response(403, schema=ErrorSchema, description=RECENT_ONLY)
    def post(self, data: dict) -> dict:
        """Replace the recovery codes (the old ones stop working), with the password and a code, in
        a recent session."""
        require_recent_sign_in()
        codes = mfa.regenerate_recovery_codes(current_staff(), data["password"], data["code"])
        return {"recovery_codes": codes}


@blp.route("/logout")
class Logout(MethodView):
    @blp.response(204)
    @blp.alt_response(401, schema=ErrorSchema)
    def post(self) -> None:
        """End this session and every other session of the staff user (R-SEC-5)."""
        staff = current_staff()
        if g.auth_method == "session":
            staff.session_token = new_session_token()
            logout_user()
            session.clear()


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, SessionSchema)
    @blp.alt_response(401, schema=ErrorSchema)
    def get(self) -> dict:
        """The logged-in staff user and a CSRF token for unsafe calls."""
        return session_answer(current_staff())


def init_app(app: Flask) -> None:
    app.before_request(authenticate_api_request)

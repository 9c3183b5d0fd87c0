"""Flask-Login wiring shared by staff sessions and portal sessions."""

from __future__ import annotations

import time

from flask import Flask, Response, current_app, g, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import bindparam, select

from portal_app.extensions import db, login_manager
from portal_app.models import PortalUser, StaffUser


def init_app(app: Flask) -> None:
    init_session_timeouts(app)
    login_manager.session_protection = None  # sessions are ended by rotating the token instead

    @login_manager.user_loader
    def load_user(user_id: str) -> StaffUser | PortalUser | None:
        # The id is "<kind>:<rotating session token>", never a primary key.
        kind, _, token = user_id.partition(":")
        if not token:
            return None
        if kind == "staff":
            return db.session.scalar(_STAFF_BY_TOKEN, {"token": token})
        if kind == "portal":
            user = db.session.scalar(_PORTAL_BY_TOKEN, {"token": token})
            return user if user is not None and user.is_active else None
        return None


# Built once: every signed-in request runs one of them (SQLAlchemy caches the SQL, but building
# the expression again cost more than running it).
_STAFF_BY_TOKEN = select(StaffUser).where(
    StaffUser.session_token == bindparam("token"), StaffUser.is_active.is_(True)
)
_PORTAL_BY_TOKEN = select(PortalUser).where(PortalUser.session_token == bindparam("token"))


# The idle timeout (60 minutes) is measured to within this many seconds.
SEEN_AT_PRECISION = 30


def start_session(user: StaffUser | PortalUser) -> None:
    """Log a user in with a fresh session (R-SEC-5) that the timeouts below measure."""
    session.clear()
    # Flask-WTF caches this request's CSRF token in g: a page rendered after the rotation must
    # carry a token of the new session
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    login_user(user)
    now = int(time.time())
    session["auth_at"] = session["seen_at"] = now
    session.permanent = True


def end_session() -> None:
    logout_user()
    session.clear()


def session_expired(app: Flask) -> str | None:
    """'absolute' after SESSION_MAX_AGE_HOURS, 'idle' after SESSION_IDLE_MINUTES (R-SEC-11)."""
    now = int(time.time())
    auth_at, seen_at = session.get("auth_at"), session.get("seen_at")
    if not isinstance(auth_at, int) or not isinstance(seen_at, int):
        return "absolute"
    if now - auth_at >= app.config["SESSION_MAX_AGE_HOURS"] * 3600:
        return "absolute"
    if now - seen_at >= app.config["SESSION_IDLE_MINUTES"] * 60:
        return "idle"
    return None


def init_session_timeouts(app: Flask) -> None:
    @app.before_request
    def enforce_session_lifetime() -> Response | None:
        if request.endpoint == "static" or "_user_id" not in session:
            return None
        if request.path.startswith("/api/") and request.headers.get("Authorization"):
            return None  # bearer calls carry no session
        if not current_user.is_authenticated:
            return None
        reason = session_expired(app)
        if reason is None:
            now = int(time.time())
            if now - session["seen_at"] >= SEEN_AT_PRECISION:
                session["seen_at"] = now  # a new cookie at most every half minute, not per request
            return None
        end_session()
        if request.path.startswith("/portal/"):
            return redirect(url_for("portal.login", expired=reason))
        return None  # the API then answers 401 for a request without a session

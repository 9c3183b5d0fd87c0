"""Flask-Login wiring shared by staff sessions and portal sessions."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from portal_app.extensions import db, login_manager
from portal_app.models import PortalUser, StaffUser


def init_app(app: Flask) -> None:
    login_manager.session_protection = None  # sessions are ended by rotating the token instead

    @login_manager.user_loader
    def load_user(user_id: str) -> StaffUser | PortalUser | None:
        # The id is "<kind>:<rotating session token>", never a primary key.
        kind, _, token = user_id.partition(":")
        if not token:
            return None
        if kind == "staff":
            return db.session.scalar(
                select(StaffUser).where(StaffUser.session_token == token, StaffUser.is_active.is_(True))
            )
        if kind == "portal":
            user = db.session.scalar(select(PortalUser).where(PortalUser.session_token == token))
            return user if user is not None and user.is_active else None
        return None

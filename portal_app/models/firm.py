"""The tenant, its staff users and their personal API tokens."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal_app.extensions import db
from portal_app.models.mfa import MfaColumns
from portal_app.orm import BigId, UTCDateTime, utcnow

STAFF_ROLES = ("admin", "staff")
# R-LFA-1: the actions a firm may let clients take from an email without logging in
LOGIN_FREE_ACTIONS = ("view_documents", "sign", "approve", "upload_documents", "complete_client_requests")


def new_session_token() -> str:
    """Return a fresh per-user session identifier (Flask-Login's id)."""
    return secrets.token_urlsafe(24)


class Firm(db.Model):
    __tablename__ = "firms"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # R-SEC-13: everyone of that kind must sign in with two factors
    require_mfa_staff: Mapped[bool] = mapped_column(default=False)
    require_mfa_clients: Mapped[bool] = mapped_column(default=False)
    # R-SYN-4: the bearer secret of POST /api/v1/inbound-email (admins read it, so it is kept
    # encrypted; the digest finds the firm)
    inbound_secret: Mapped[str | None] = mapped_column(String(255))
    inbound_secret_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    portal_settings: Mapped[dict] = mapped_column(db.JSON, default=dict)
    # where clients' answers to Portico's emails go (the From address stays MAIL_FROM)
    reply_to: Mapped[str | None] = mapped_column(String(254))
    # R-LFA-1: what clients may do from a notification email without logging in
    login_free_actions: Mapped[list] = mapped_column(db.JSON, default=list, server_default=text("'[]'"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    staff: Mapped[list[StaffUser]] = relationship(back_populates="firm", lazy="raise_on_sql")


class StaffUser(MfaColumns, db.Model):
    """A member of a firm's staff; logs in to the staff API."""

    __tablename__ = "staff_users"
    __table_args__ = (
        UniqueConstraint("email"),
        CheckConstraint("email = lower(email)", name="email_normalised"),
        CheckConstraint("role in ('admin', 'staff')", name="role_known"),
        UniqueConstraint("id", "firm_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16), default="staff")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_session_token)
    is_active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # R-OPS-3: this user's last write through the API, kept while a read replica is configured;
    # for READ_YOUR_WRITES_SECONDS after it their reads go to the primary.
    last_write_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    firm: Mapped[Firm] = relationship(back_populates="staff")

    # Flask-Login protocol: the id is a rotating token, so rotating it ends every session.
    is_authenticated = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"staff:{self.session_token}"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class ApiToken(db.Model):
    """A staff user's personal API token; only a digest of it is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"), index=True)
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    staff_user: Mapped[StaffUser] = relationship()

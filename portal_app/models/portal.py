"""Client portal identities, their login history, and invitations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    and_,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal_app.extensions import db
from portal_app.models.accounts import ContactEmail
from portal_app.models.firm import Firm, new_session_token
from portal_app.models.mfa import MfaColumns
from portal_app.orm import BigId, UTCDateTime, utcnow

INVITATION_REVOKE_REASONS = ("revoked", "replaced", "email_changed", "login_off")


class PortalUser(MfaColumns, db.Model):
    """The login identity of one contact email (one per email)."""

    __tablename__ = "portal_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"), index=True)
    email_id: Mapped[int] = mapped_column(ForeignKey("contact_emails.id", ondelete="CASCADE"), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    session_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_session_token)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    language: Mapped[str | None] = mapped_column(String(8))
    current_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Every portal page needs the address and the firm's name: loaded with the user, one query.
    email: Mapped[ContactEmail] = relationship(lazy="joined")
    firm: Mapped[Firm] = relationship(lazy="joined")

    is_authenticated = True
    is_anonymous = False

    @hybrid_property
    def is_activated(self) -> bool:
        """Activated: the client chose a password (staff resetting the login clears both)."""
        return self.activated_at is not None and self.password_hash is not None

    @is_activated.inplace.expression
    @classmethod
    def _is_activated_expression(cls) -> ColumnElement[bool]:
        return and_(cls.activated_at.is_not(None), cls.password_hash.is_not(None))

    @property
    def is_active(self) -> bool:
        return self.is_activated  # Flask-Login's word for it

    def get_id(self) -> str:
        return f"portal:{self.session_token}"


class LoginEvent(db.Model):
    """One successful portal login (the account's login activity)."""

    __tablename__ = "login_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"))
    portal_user_id: Mapped[int] = mapped_column(ForeignKey("portal_users.id", ondelete="CASCADE"), index=True)
    ip_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invitation(db.Model):
    """An activation request sent to one contact email from one account."""

    __tablename__ = "invitations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "firm_id"], ["accounts.id", "accounts.firm_id"], ondelete="CASCADE"
        ),
        CheckConstraint(
            "revoked_reason IS NULL OR revoked_reason IN "
            "('revoked', 'replaced', 'email_changed', 'login_off')",
            name="revoked_reason_known",
        ),
        Index("ix_invitations_email_id", "email_id"),
        Index("ix_invitations_account_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[int] = mapped_column(BigId)
    email_id: Mapped[int] = mapped_column(ForeignKey("contact_emails.id", ondelete="CASCADE"))
    # The address the invitation was sent to: a changed address kills it (R-LOG-8).
    address: Mapped[str] = mapped_column(String(254))
    message: Mapped[str] = mapped_column(Text, default="")
    # The language staff chose for the email and the activation page (None: the browser's).
    language: Mapped[str | None] = mapped_column(String(8))
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    # Digest of the token's secret part; the raw token exists only in the email (R-LOG-2).
    token_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(32))

    @hybrid_property
    def is_outstanding(self) -> bool:
        """Neither used nor withdrawn (an expired one is still outstanding: it can be revoked)."""
        return self.accepted_at is None and self.revoked_at is None

    @is_outstanding.inplace.expression
    @classmethod
    def _is_outstanding_expression(cls) -> ColumnElement[bool]:
        return and_(cls.accepted_at.is_(None), cls.revoked_at.is_(None))

    @hybrid_property
    def is_live(self) -> bool:
        """Outstanding and not expired: its link works. An invitation is live from the moment
        it is created (it gets its ``expires_at`` then; sending restarts the clock). One rule for
        every reader: a row without ``expires_at`` is not live."""
        return self.is_outstanding and self.expires_at is not None and self.expires_at > utcnow()

    @is_live.inplace.expression
    @classmethod
    def _is_live_expression(cls) -> ColumnElement[bool]:
        return and_(cls.is_outstanding, cls.expires_at > utcnow())

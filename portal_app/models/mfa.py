"""Two-factor sign-in (R-SEC-13): the factor's columns on both kinds of user, recovery codes and
emailed codes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from portal_app.extensions import db
from portal_app.orm import BigId, UTCDateTime, utcnow

MFA_METHODS = ("totp", "email")


class MfaColumns:
    """The second factor of a staff or portal user.

    ``totp_secret`` is encrypted (Fernet, a key derived from SECRET_KEY and its fallbacks); while
    ``mfa_method`` is None it is an enrolment in progress. ``totp_last_step`` is the last TOTP time
    step accepted: a code is accepted once (no replay within its window). ``mfa_challenge`` is the
    digest of the one outstanding login challenge (the staff API's ``mfa_token``)."""

    mfa_method: Mapped[str | None] = mapped_column(String(8))
    mfa_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_secret: Mapped[str | None] = mapped_column(String(255))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    mfa_challenge: Mapped[str | None] = mapped_column(String(64))
    # The WebAuthn user handle of this user's passkeys (R-SEC-15): random, base64url, made with
    # the first passkey; never the user's id, so an authenticator learns nothing from it.
    passkey_handle: Mapped[str | None] = mapped_column(String(43), index=True, unique=True)


class RecoveryCode(db.Model):
    """One single-use recovery code (stored as a SHA-256 of its 50 random bits)."""

    __tablename__ = "recovery_codes"
    __table_args__ = (
        CheckConstraint("(staff_user_id IS NULL) <> (portal_user_id IS NULL)", name="one_owner"),
        Index("ix_recovery_codes_staff_user_id", "staff_user_id"),
        Index("ix_recovery_codes_portal_user_id", "portal_user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    portal_user_id: Mapped[int | None] = mapped_column(ForeignKey("portal_users.id", ondelete="CASCADE"))
    code_digest: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EmailCode(db.Model):
    """A six-digit code emailed to a client (10 minutes, single use). The code is minted when the
    email is rendered, like every link: only its digest is stored, never in the outbox."""

    __tablename__ = "email_codes"
    __table_args__ = (
        CheckConstraint("purpose in ('login', 'enrol')", name="purpose_known"),
        Index("ix_email_codes_portal_user_id", "portal_user_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    portal_user_id: Mapped[int] = mapped_column(ForeignKey("portal_users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(8))
    code_digest: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

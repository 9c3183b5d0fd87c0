"""Passkeys (R-SEC-15): a user's WebAuthn credentials, and the single-use challenges they answer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from portal_app.extensions import db
from portal_app.orm import BigId, UTCDateTime, utcnow

CHALLENGE_PURPOSES = ("register", "login-staff", "login-client")


class Passkey(db.Model):
    """One passkey of a staff or a portal user. Only what verifying needs is kept: the public key
    (COSE), the signature counter, and what the list shows. ``blocked_at`` is set when its counter
    went backwards (a cloned authenticator): it signs nobody in again, and can only be removed."""

    __tablename__ = "passkeys"
    __table_args__ = (
        CheckConstraint("(staff_user_id IS NULL) <> (portal_user_id IS NULL)", name="one_owner"),
        Index("ix_passkeys_staff_user_id", "staff_user_id"),
        Index("ix_passkeys_portal_user_id", "portal_user_id"),
        Index("ix_passkeys_credential_id", "credential_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    portal_user_id: Mapped[int | None] = mapped_column(ForeignKey("portal_users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    credential_id: Mapped[bytes] = mapped_column(LargeBinary)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list] = mapped_column(db.JSON, default=list)
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    backup_eligible: Mapped[bool] = mapped_column(Boolean, default=False)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PasskeyChallenge(db.Model):
    """A challenge handed to a browser: only its SHA-256 is stored; claimed (deleted) by the one
    response that answers it, within 5 minutes. A registration challenge has its owner; a sign-in
    challenge has none (the passkey names its user) but says which side it signs in to."""

    __tablename__ = "passkey_challenges"
    __table_args__ = (
        CheckConstraint("purpose IN ('register', 'login-staff', 'login-client')", name="purpose_known"),
        Index("ix_passkey_challenges_digest", "digest", unique=True),
        Index("ix_passkey_challenges_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16))
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    portal_user_id: Mapped[int | None] = mapped_column(ForeignKey("portal_users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

"""Two-factor sign-in for staff and clients (R-SEC-13): one service for the staff API and the portal.

- TOTP (RFC 6238: 6 digits, 30 s, ±1 step) with pyotp. The secret is stored sealed
  (``portal_app.sealed``: Fernet under SECRET_KEY, opened by SECRET_KEY_FALLBACKS too, so a key
  rotation locks nobody out; ``reencrypt`` moves a secret to the new key).
- A code is accepted once: the accepted time step is recorded with a conditional UPDATE, so a
  replay within the window (or two requests racing with the same code) fails.
- 10 single-use recovery codes per enrolment (50 random bits each, stored as SHA-256).
- Clients may use a six-digit code emailed to them instead of an app (10 minutes, single use).
  Like every link, the code is minted when the email is rendered; only its digest is stored.
- A firm may require two factors for all staff and/or all clients; such a user without a factor
  may do nothing but enrol.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pyotp
import segno
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from portal_app import sealed
from portal_app.extensions import db
from portal_app.models import (
    ContactSettings,
    Firm,
    OutboxEmail,
    PortalUser,
    RecoveryCode,
    StaffUser,
    utcnow,
)
from portal_app.passwords import verify_password
from portal_app.services import mfa_email
from portal_app.services.audit import Actor
from portal_app.services.errors import Conflict, ValidationFailed

User = StaffUser | PortalUser

ISSUER_FALLBACK = "Portico"
INTERVAL = 30
RECOVERY_CODE_COUNT = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read aloud and typed by people


def _encrypt(secret: str) -> str:
    return sealed.seal(secret)


def _decrypt(stored: str | None) -> str | None:
    return sealed.unseal(stored)


def reencrypt(user: User) -> None:
    """Move the user's secret to the current key (after a SECRET_KEY rotation)."""
    if user.totp_secret:
        user.totp_secret = sealed.reseal(user.totp_secret)


# --- state ---------------------------------------------------------------------------------------


def enrolled(user: User) -> bool:
    return user.mfa_method is not None


def required(user: User) -> bool:
    firm = db.session.get(Firm, user.firm_id)
    if firm is None:
        return False
    return firm.require_mfa_staff if isinstance(user, StaffUser) else firm.require_mfa_clients


def must_enrol(user: User) -> bool:
    """A firm requires two factors and this user has none: enrolment is all they may do."""
    return not enrolled(user) and required(user)


def _owner(user: User) -> dict[str, int]:
    return {"staff_user_id": user.id} if isinstance(user, StaffUser) else {"portal_user_id": user.id}


def _owner_filter(user: User) -> Any:
    if isinstance(user, StaffUser):
        return RecoveryCode.staff_user_id == user.id
    return RecoveryCode.portal_user_id == user.id


# --- enrolment -----------------------------------------------------------------------------------


@dataclass
class TotpSetup:
    secret: str  # base32, for typing into an app by hand
    uri: str  # otpauth://
    qr_svg: str  # inline SVG, made here: nothing is sent off the machine


def _label(user: User) -> tuple[str, str]:
    firm = db.session.get(Firm, user.firm_id)
    issuer = firm.name if firm else ISSUER_FALLBACK
    account = user.email if isinstance(user, StaffUser) else user.email.address
    return issuer, account


def begin_totp(user: User) -> TotpSetup:
    """Start (or restart) enrolling an authenticator app; nothing changes for sign-in until the
    first code confirms it."""
    if enrolled(user):
        raise Conflict(
            "Two-factor sign-in is already on. Turn it off first to change it.", code="mfa_enabled"
        )
    secret = pyotp.random_base32()
    user.totp_secret = _encrypt(secret)
    user.totp_last_step = None
    db.session.flush()
    return pending_totp(user)  # type: ignore[return-value]


def pending_totp(user: User) -> TotpSetup | None:
    """The enrolment in progress, shown again (the same secret), or None."""
    if enrolled(user):
        return None
    secret = _decrypt(user.totp_secret)
    if secret is None:
        return None
    issuer, account = _label(user)
    uri = pyotp.TOTP(secret, interval=INTERVAL).provisioning_uri(name=account, issuer_name=issuer)
    svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff", title=str(_l("QR code")))
    return TotpSetup(secret=secret, uri=uri, qr_svg=svg)


def confirm_totp(user: User, code: str) -> list[str]:
    """The first code confirms the app: two factors are on, and 10 recovery codes (shown once)."""
    if enrolled(user):
        raise Conflict("Two-factor sign-in is already on.", code="mfa_enabled")
    secret = _decrypt(user.totp_secret)
    if secret is None:
        raise Conflict("Start the set-up first.", code="mfa_not_started")
    if not _accept_totp(user, secret, code):
        raise ValidationFailed(
            "That code is not right. Check the time on your phone and try again.",
            fields={"code": ["Not a current code."]},
            code="invalid_code",
        )
    return _turn_on(user, "totp")


def begin_email(user: PortalUser) -> OutboxEmail:
    """Clients only: email a code to confirm that codes by email reach them."""
    if enrolled(user):
        raise Conflict("Two-factor sign-in is already on.", code="mfa_enabled")
    return mfa_email.send_email_code(user, purpose="enrol")


def confirm_email(user: PortalUser, code: str) -> list[str]:
    if enrolled(user):
        raise Conflict("Two-factor sign-in is already on.", code="mfa_enabled")
    if not mfa_email.accept_email_code(user, code, purpose="enrol"):
        raise ValidationFailed(
            "That code is not right or has expired.", fields={"code": ["Not valid."]}, code="invalid_code"
        )
    user.totp_secret = None
    return _turn_on(user, "email")


def _turn_on(user: User, method: str) -> list[str]:
    user.mfa_method = method
    user.mfa_enabled_at = utcnow()
    codes = _new_recovery_codes(user)
    db.session.flush()
    return codes


def _new_recovery_codes(user: User) -> list[str]:
    db.session.execute(
        RecoveryCode.__table__.delete().where(_owner_filter(user))  # type: ignore[attr-defined]
    )
    codes = [
        "-".join("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODE_COUNT)
    ]
    db.session.add_all(RecoveryCode(code_digest=_code_digest(code), **_owner(user)) for code in codes)
    return codes


def _code_digest(code: str) -> str:
    return hashlib.sha256(_normalise_recovery(code).encode()).hexdigest()


def _normalise_recovery(code: str) -> str:
    return re.sub(r"[\s-]", "", code).lower()


# --- verifying a code ----------------------------------------------------------------------------


def _accept_totp(user: User, secret: str, code: str) -> bool:
    """A current code (±1 step) whose step is newer than the last one accepted; the step is
    recorded in the same statement that checks it (race-safe, no replay)."""
    code = re.sub(r"\s", "", code)
    if not re.fullmatch(r"\d{6}", code):
        return False
    totp = pyotp.TOTP(secret, interval=INTERVAL)
    now_step = int(time.time()) // INTERVAL
    for step in (now_step - 1, now_step, now_step + 1):
        if hmac.compare_digest(totp.at(step * INTERVAL), code):
            table = type(user)
            claimed = db.session.execute(
                update(table)
                .where(table.id == user.id)
                .where((table.totp_last_step.is_(None)) | (table.totp_last_step < step))
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed == 1:
                user.totp_last_step = step
                return True
            return False  # this code (or a later one) was already used
    return False


def _accept_recovery(user: User, code: str) -> bool:
    normalised = _normalise_recovery(code)
    if not re.fullmatch(f"[{_ALPHABET}]{{10}}", normalised):
        return False
    used = db.session.execute(
        update(RecoveryCode)
        .where(
            _owner_filter(user),
            RecoveryCode.code_digest == _code_digest(normalised),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    return used == 1


def verify(user: User, code: str) -> str | None:
    """Check a sign-in code: the app's, an emailed one (clients who chose email) or a recovery
    code; each works once. Returns which kind was accepted, or None."""
    code = (code or "").strip()[:64]
    if not code or not enrolled(user):
        return None
    if user.mfa_method == "totp":
        secret = _decrypt(user.totp_secret)
        if secret and _accept_totp(user, secret, code):
            return "totp"
    if (
        user.mfa_method == "email"
        and isinstance(user, PortalUser)
        and mfa_email.accept_email_code(user, code, purpose="login")
    ):
        return "email"
    if _accept_recovery(user, code):
        return "recovery"
    return None


def recovery_codes_left(user: User) -> int:
    return len(
        db.session.scalars(
            select(RecoveryCode.id).where(_owner_filter(user), RecoveryCode.used_at.is_(None))
        ).all()
    )


def owns_recovery_codes(user: User, codes: list[str]) -> bool:
    """Are these exactly unused recovery codes of this user (the download re-checks them)?"""
    digests = {_code_digest(code) for code in codes}
    if not codes or len(codes) > RECOVERY_CODE_COUNT or len(digests) != len(codes):
        return False
    found = db.session.scalars(
        select(RecoveryCode.code_digest).where(
            _owner_filter(user), RecoveryCode.used_at.is_(None), RecoveryCode.code_digest.in_(digests)
        )
    ).all()
    return set(found) == digests


# --- turning it off, new recovery codes, staff reset ---------------------------------------------


def _check_password_and_code(user: User, password: str, code: str) -> None:
    if not verify_password(user.password_hash, password or ""):
        raise ValidationFailed(
            "The password is not correct.", fields={"password": ["Not correct."]}, code="invalid_credentials"
        )
    if verify(user, code) is None:
        raise ValidationFailed(
            "That code is not right.", fields={"code": ["Not a current code."]}, code="invalid_code"
        )


def disable(user: User, password: str, code: str) -> None:
    """Turn two factors off: needs the password and a code; not while the firm requires them."""
    if not enrolled(user):
        raise Conflict("Two-factor sign-in is not on.", code="mfa_not_enabled")
    if required(user):
        raise Conflict("Your firm requires two-factor sign-in; it cannot be turned off.", code="mfa_required")
    _check_password_and_code(user, password, code)
    _clear(user)


def regenerate_recovery_codes(user: User, password: str, code: str) -> list[str]:
    if not enrolled(user):
        raise Conflict("Two-factor sign-in is not on.", code="mfa_not_enabled")
    _check_password_and_code(user, password, code)
    codes = _new_recovery_codes(user)
    db.session.flush()
    return codes


def _clear(user: User) -> None:
    user.mfa_method = None
    user.mfa_enabled_at = None
    user.totp_secret = None
    user.totp_last_step = None
    user.mfa_challenge = None
    db.session.execute(RecoveryCode.__table__.delete().where(_owner_filter(user)))  # type: ignore[attr-defined]
    db.session.flush()


def reset_client(settings: ContactSettings, actor: StaffUser) -> bool:
    """Staff reset a client's second factor (never read it): audited, and the client is told by
    email. Returns False when the client had none."""
    from portal_app.services.audit import record_setting_change

    user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == settings.email_id))
    if user is None or not enrolled(user):
        return False
    old = user.mfa_method
    _clear(user)
    user.session_token = _new_session_token()  # signed-in sessions end; the next sign-in enrols afresh
    record_setting_change(
        settings,
        field="mfa",
        old=old,
        new=None,
        actor=Actor("staff", actor.id, actor.email),
        address=user.email.address,
    )
    mfa_email.email_client(
        user, "mfa_reset", _l("Your two-step sign-in was reset"), {"staff_name": actor.name or actor.email}
    )
    return True


def _new_session_token() -> str:
    from portal_app.models import new_session_token

    return new_session_token()

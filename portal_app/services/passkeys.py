"""Passkeys (R-SEC-15) for staff and clients: one service for the staff API and the portal.

- py_webauthn verifies registrations and sign-ins; this module keeps the state around it.
- Discoverable credentials only, user verification required: a passkey is something the user
  has, unlocked by something they are or know, so a passkey sign-in counts as two factors.
- The relying-party id is ``BASE_URL``'s host and the one origin accepted is ``BASE_URL``'s.
  WebAuthn refuses IP addresses as RP ids: on such an installation passkeys are not offered.
- A challenge is 32 random bytes, stored as its SHA-256 with a purpose (and, for registration,
  its owner) and expires after 5 minutes; the response that answers it claims it with one
  conditional DELETE, so it works once even when two requests race.
- The signature counter is compared here, after the signature is verified (a forged response
  must not be able to block someone's passkey): a counter that does not move forward, where the
  authenticator counts, means a cloned authenticator. The passkey is blocked and reported.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from portal_app.extensions import db
from portal_app.models import (
    Firm,
    Passkey,
    PasskeyChallenge,
    PortalUser,
    StaffUser,
    utcnow,
)
from portal_app.services.errors import Conflict, DomainError, NotFound, ValidationFailed

User = StaffUser | PortalUser

CHALLENGE_SECONDS = 5 * 60
TIMEOUT_MS = CHALLENGE_SECONDS * 1000
MAX_PASSKEYS = 20
NAME_LENGTH = 64
KNOWN_TRANSPORTS = {t.value for t in AuthenticatorTransport}


class PasskeyRefused(DomainError):
    """A sign-in or registration response that is not accepted (the reason is in ``code``)."""

    status = 401
    code = "passkey_refused"


class PasskeysUnavailable(Conflict):
    code = "passkeys_unavailable"


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str


def relying_party() -> RelyingParty:
    """``BASE_URL``'s host and origin (scheme, host and any port)."""
    parts = urlsplit(current_app.config["BASE_URL"])
    host = (parts.hostname or "").lower()
    return RelyingParty(id=host, origin=f"{parts.scheme}://{parts.netloc.lower()}")


def available() -> bool:
    """Passkeys need a domain name: WebAuthn refuses IP addresses as relying-party ids."""
    host = relying_party().id
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def _require_available() -> RelyingParty:
    if not available():
        raise PasskeysUnavailable(
            "Passkeys need the portal to be reached by a name, not an IP address: set BASE_URL to "
            "https://your-domain (or http://localhost for a trial)."
        )
    return relying_party()


# --- owners --------------------------------------------------------------------------------------


def _owner(user: User) -> dict[str, int]:
    return {"staff_user_id": user.id} if isinstance(user, StaffUser) else {"portal_user_id": user.id}


def owned_by(user: User) -> Any:
    if isinstance(user, StaffUser):
        return Passkey.staff_user_id == user.id
    return Passkey.portal_user_id == user.id


def list_passkeys(user: User) -> list[Passkey]:
    return list(db.session.scalars(select(Passkey).where(owned_by(user)).order_by(Passkey.id)))


def count(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(Passkey).where(owned_by(user))) or 0


def get_passkey(user: User, passkey_id: object) -> Passkey:
    try:
        wanted = int(str(passkey_id))
    except ValueError:
        wanted = 0
    passkey = db.session.scalar(select(Passkey).where(owned_by(user), Passkey.id == wanted))
    if passkey is None:
        raise NotFound("No such passkey.", code="passkey_not_found")
    return passkey


def _handle(user: User) -> str:
    if not user.passkey_handle:
        user.passkey_handle = bytes_to_base64url(secrets.token_bytes(32))
    return user.passkey_handle


def _account_name(user: User) -> str:
    return user.email if isinstance(user, StaffUser) else user.email.address


# --- challenges ----------------------------------------------------------------------------------


def _digest(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


def _issue_challenge(purpose: str, owner: User | None) -> bytes:
    now = utcnow()
    db.session.execute(delete(PasskeyChallenge).where(PasskeyChallenge.expires_at <= now))
    challenge = secrets.token_bytes(32)
    db.session.add(
        PasskeyChallenge(
            digest=_digest(challenge),
            purpose=purpose,
            expires_at=now + timedelta(seconds=CHALLENGE_SECONDS),
            **(_owner(owner) if owner is not None else {}),
        )
    )
    db.session.flush()
    return challenge


def _challenge_of(client_data_json: bytes) -> bytes:
    """The challenge the browser signed, read from its client data (verified again by the
    library against the one claimed)."""
    try:
        data = json.loads(client_data_json)
        return base64url_to_bytes(data["challenge"])
    except (ValueError, KeyError, TypeError):
        raise PasskeyRefused("The passkey answer is not readable.", code="invalid_response") from None


def _claim_challenge(challenge: bytes, purpose: str, owner: User | None) -> None:
    """Spend the challenge: one conditional DELETE, so a replay (or a race) finds nothing."""
    statement = delete(PasskeyChallenge).where(
        PasskeyChallenge.digest == _digest(challenge),
        PasskeyChallenge.purpose == purpose,
        PasskeyChallenge.expires_at > utcnow(),
    )
    if owner is not None:
        statement = statement.where(
            *(getattr(PasskeyChallenge, column) == value for column, value in _owner(owner).items())
        )
    claimed = db.session.execute(statement.execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        raise PasskeyRefused(
            "This passkey request has expired or was already used. Try again.", code="invalid_challenge"
        )


# --- registration --------------------------------------------------------------------------------


def registration_options(user: User) -> dict[str, Any]:
    """What ``navigator.credentials.create`` needs: a resident key, user verification, no
    attestation (we trust no vendor list; the passkey proves itself at each sign-in)."""
    rp = _require_available()
    if count(user) >= MAX_PASSKEYS:
        raise Conflict(f"You have {MAX_PASSKEYS} passkeys; remove one first.", code="too_many_passkeys")
    firm = db.session.get(Firm, user.firm_id)
    existing = list_passkeys(user)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=firm.name if firm else "Portico",
        user_id=base64url_to_bytes(_handle(user)),
        user_name=_account_name(user),
        user_display_name=(user.name if isinstance(user, StaffUser) else "") or _account_name(user),
        challenge=_issue_challenge("register", user),
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=p.credential_id) for p in existing],
    )
    return json.loads(options_to_json(options))


def _name(name: str | None, user: User) -> str:
    cleaned = " ".join((name or "").split())
    if len(cleaned) > NAME_LENGTH:
        raise ValidationFailed(
            f"A passkey's name has at most {NAME_LENGTH} characters.",
            fields={"name": [f"At most {NAME_LENGTH} characters."]},
        )
    return cleaned or str(_l("Passkey %(number)s", number=count(user) + 1))


def register(user: User, credential: Any, name: str | None) -> Passkey:
    """Verify the browser's answer to the registration options and keep the passkey."""
    rp = _require_available()
    label = _name(name, user)
    try:
        parsed = parse_registration_credential_json(credential)
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise PasskeyRefused("The passkey answer is not readable.", code="invalid_response") from None
    _claim_challenge(_challenge_of(parsed.response.client_data_json), "register", user)
    try:
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=_challenge_of(parsed.response.client_data_json),
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except WebAuthnException as exc:
        raise PasskeyRefused(f"The passkey was not accepted: {exc}", code="passkey_refused") from None
    taken = db.session.scalar(select(Passkey.id).where(Passkey.credential_id == verified.credential_id))
    if taken is not None:
        raise Conflict("This passkey is already registered.", code="passkey_exists")
    transports = [t.value for t in (parsed.response.transports or []) if t.value in KNOWN_TRANSPORTS]
    passkey = Passkey(
        name=label,
        credential_id=verified.credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=transports,
        aaguid=str(verified.aaguid)[:36],
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
        **_owner(user),
    )
    db.session.add(passkey)
    db.session.flush()
    return passkey


def remove(user: User, passkey_id: object) -> None:
    db.session.delete(get_passkey(user, passkey_id))
    db.session.flush()


# --- sign-in -------------------------------------------------------------------------------------


def login_options(side: str) -> dict[str, Any]:
    """Options for ``navigator.credentials.get``: no credential list (the passkey is
    discoverable and names its user), user verification required."""
    rp = _require_available()
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=_issue_challenge(f"login-{side}", None),
        timeout=TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return json.loads(options_to_json(options))


@dataclass
class ClonedPasskey(Exception):
    """The signature is right but the counter went backwards. The caller records it (``block``)
    in a transaction of its own, since the refusal rolls the request back."""

    passkey_id: int


def authenticate(side: str, credential: Any) -> User:
    """The user a passkey sign-in answer proves, or ``PasskeyRefused`` / ``ClonedPasskey``."""
    rp = _require_available()
    try:
        parsed = parse_authentication_credential_json(credential)
    except (WebAuthnException, ValueError, TypeError, KeyError):
        raise PasskeyRefused("The passkey answer is not readable.", code="invalid_response") from None
    challenge = _challenge_of(parsed.response.client_data_json)
    _claim_challenge(challenge, f"login-{side}", None)
    passkey = db.session.scalar(select(Passkey).where(Passkey.credential_id == parsed.raw_id))
    user = _owner_of(passkey, side) if passkey is not None else None
    if passkey is None or user is None or not user.is_active:
        raise PasskeyRefused("This passkey is not registered here.", code="unknown_passkey")
    handle = parsed.response.user_handle
    if handle is not None and bytes_to_base64url(handle) != user.passkey_handle:
        raise PasskeyRefused("This passkey is not registered here.", code="unknown_passkey")
    if passkey.blocked_at is not None:
        raise PasskeyRefused(_blocked_message(), code="passkey_blocked")
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=0,  # compared below, once the signature is proven
            require_user_verification=True,
        )
    except WebAuthnException as exc:
        raise PasskeyRefused(f"The passkey was not accepted: {exc}", code="passkey_refused") from None
    stored, new = passkey.sign_count, verified.new_sign_count
    if (stored > 0 or new > 0) and new <= stored:
        raise ClonedPasskey(passkey.id)
    passkey.sign_count = new
    passkey.backed_up = verified.credential_backed_up
    passkey.last_used_at = utcnow()
    return user


def _owner_of(passkey: Passkey, side: str) -> User | None:
    if side == "staff":
        return db.session.get(StaffUser, passkey.staff_user_id) if passkey.staff_user_id else None
    return db.session.get(PortalUser, passkey.portal_user_id) if passkey.portal_user_id else None


def _blocked_message() -> str:
    return (
        "This passkey was blocked: its signature counter went backwards, the mark of a copied "
        "authenticator. Sign in with your password and remove it."
    )

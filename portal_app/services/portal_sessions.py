"""A client's sign-in, as rules: who a password signs in (R-SEC-4, R-SEC-10), what a sign-in
records, what signing out ends (R-SEC-5), and changing the password from the profile.

The portal's views hold the forms, the pages and the Flask session; what is decided about a
client's sign-in is decided here, once.
"""

from __future__ import annotations

from sqlalchemy import select

from portal_app.extensions import db
from portal_app.models import ContactEmail, LoginEvent, PortalUser, new_session_token, utcnow
from portal_app.passwords import hash_password, needs_rehash, verify_password
from portal_app.services import client_passwords
from portal_app.services.errors import ValidationFailed
from portal_app.services.validation import normalise_email


def authenticate(email: str, password: str) -> PortalUser | None:
    """The activated client this email and password sign in, or None: the same answer and one
    argon2 verification whether or not the email is known (R-SEC-4). A hash made with older
    parameters is replaced by one made now (R-SEC-10)."""
    try:
        address = normalise_email(email)
    except ValidationFailed:
        address = ""
    candidates = (
        db.session.scalars(
            select(PortalUser)
            .join(ContactEmail, ContactEmail.id == PortalUser.email_id)
            .where(ContactEmail.address == address, PortalUser.is_activated)
            .order_by(PortalUser.id)
        ).all()
        if address
        else []
    )
    if not candidates:
        verify_password(None, password)  # spend the same time as a real check
        return None
    for user in candidates:  # one per firm the address is a client of
        if verify_password(user.password_hash, password) and user.is_active:
            if needs_rehash(user.password_hash or ""):
                user.password_hash = hash_password(password)
            return user
    return None


def record_sign_in(user: PortalUser, *, ip_address: str, user_agent: str) -> None:
    """When and from where the client signed in (staff see it on the account overview)."""
    user.last_login_at = utcnow()
    db.session.add(
        LoginEvent(
            firm_id=user.firm_id,
            portal_user_id=user.id,
            ip_address=ip_address[:64],
            user_agent=user_agent[:300],
        )
    )


def end_every_session(user: PortalUser) -> None:
    """Signing out ends this client's other sessions too (R-SEC-5): their token changes."""
    user.session_token = new_session_token()


def change_password(user: PortalUser, current: str, password: str, confirm: str) -> None:
    """The profile's password change: the current password first, then the new one's rules;
    other sessions end (the caller starts this one afresh)."""
    if not verify_password(user.password_hash, current):
        raise ValidationFailed(
            "Your current password is not correct.", fields={"current": ["Not correct."]}
        )
    client_passwords.set_password(user, password, confirm)

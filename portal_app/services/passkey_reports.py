"""Around a passkey, beyond its ceremonies (R-SEC-15): one whose counter went backwards is
blocked and reported, and staff see and remove a client's passkeys (never read them)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from portal_app.extensions import db
from portal_app.models import ContactSettings, InboxItem, Passkey, PortalUser, StaffUser, utcnow
from portal_app.services import mfa_email
from portal_app.services.audit import Actor, record_setting_change
from portal_app.services.passkeys import count, owned_by


def block(passkey_id: int) -> None:
    """Block a passkey whose counter went backwards, and say so: an Inbox+ item for the firm
    when it is a staff user's, an email to the client when it is theirs."""
    passkey = db.session.get(Passkey, passkey_id)
    if passkey is None or passkey.blocked_at is not None:
        return
    passkey.blocked_at = utcnow()
    if passkey.staff_user_id is not None:
        staff = db.session.get(StaffUser, passkey.staff_user_id)
        if staff is not None:
            db.session.add(
                InboxItem(
                    firm_id=staff.firm_id,
                    kind="passkey_blocked",
                    title=f"A passkey of {staff.email} was blocked: it may have been copied"[:300],
                    body=(
                        f"The passkey “{passkey.name}” signed in with a signature counter that went "
                        "backwards, which a copied (cloned) authenticator does. The sign-in was refused "
                        "and the passkey blocked. Check the user's devices; the user can remove it "
                        "and add a new one after a password sign-in."
                    ),
                    data={"staff_user_id": str(staff.id), "passkey_id": str(passkey.id)},
                )
            )
    else:
        client = db.session.get(PortalUser, passkey.portal_user_id)
        if client is not None:
            mfa_email.email_client(
                client,
                "passkey_blocked",
                _l("A passkey of yours was blocked"),
                {"passkey_name": passkey.name},
            )
    db.session.flush()


def client_passkey_count(settings: ContactSettings) -> int:
    user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == settings.email_id))
    return count(user) if user is not None else 0


def remove_client_passkeys(settings: ContactSettings, actor: StaffUser) -> int:
    """Staff remove every passkey of a client (never read them): audited, and the client is told
    by email. Returns how many were removed."""
    user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == settings.email_id))
    removed = count(user) if user is not None else 0
    if user is None or removed == 0:
        return 0
    db.session.execute(delete(Passkey).where(owned_by(user)))
    record_setting_change(
        settings,
        field="passkeys",
        old=removed,
        new=0,
        actor=Actor("staff", actor.id, actor.email),
        address=user.email.address,
    )
    mfa_email.email_client(
        user,
        "passkeys_removed",
        _l("Your passkeys were removed"),
        {"staff_name": actor.name or actor.email, "count": removed},
    )
    db.session.flush()
    return removed

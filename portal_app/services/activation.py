"""The invitation link, from the email to the portal (R-LOG-3, R-LOG-4, R-NOT-2): minted when
the email is sent, checked against the database at every use, accepted once, and the client's
"ask for a new invitation".

Raw tokens never touch the database, a job argument or Redis: the mail job mints the link when it
renders the email and stores a digest of the token's secret part (R-SEC-9). Every use of a link
re-checks the database: digest, expiry, address, revocation and single use (R-SEC-6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from portal_app import tokens
from portal_app.extensions import db
from portal_app.mail.outbox import absolute_url
from portal_app.models import (
    Account,
    ContactEmail,
    ContactSettings,
    Firm,
    InboxItem,
    Invitation,
    Notification,
    OutboxEmail,
    PortalUser,
    new_session_token,
    utcnow,
)
from portal_app.passwords import hash_password
from portal_app.services.client_passwords import check_new_password
from portal_app.services.errors import Conflict
from portal_app.sql import id_in


def load_invitations(rows: list[OutboxEmail]) -> list[Any]:
    """A batch's invitations and their emails in two queries (the builder then reads them from
    the session's identity map)."""
    ids = [row.invitation_id for row in rows if row.invitation_id]
    if not ids:
        return []
    invitations = db.session.scalars(select(Invitation).where(id_in(Invitation.id, ids))).all()
    email_ids = {invitation.email_id for invitation in invitations}
    emails = db.session.scalars(select(ContactEmail).where(id_in(ContactEmail.id, email_ids))).all()
    return [*invitations, *emails]


def invitation_email_context(row: OutboxEmail) -> dict[str, Any] | None:
    """Mint the link inside the job; None (send nothing) if the invitation died meanwhile."""
    invitation = db.session.get(Invitation, row.invitation_id) if row.invitation_id else None
    if invitation is None or not invitation.is_outstanding:
        return None  # R-REL-4
    email = db.session.get(ContactEmail, invitation.email_id)
    if email is None or email.address != invitation.address:
        return None
    secret = tokens.new_secret()
    now = utcnow()
    invitation.token_digest = tokens.digest(secret)
    invitation.sent_at = now
    invitation.expires_at = now + timedelta(days=current_app.config["INVITATION_MAX_AGE_DAYS"])
    token = tokens.mint(tokens.INVITATION, {"i": invitation.id, "s": secret})
    return {
        "link": absolute_url("portal.activate", token=token),
        "expires_at": invitation.expires_at,
        "address": invitation.address,
    }


def access_granted_context(row: OutboxEmail) -> dict[str, Any]:
    return {"link": absolute_url("portal.login")}


def _notification_matches(notification_id: int, invitation: Invitation) -> bool:
    """An activation-banner link is good while the notification it came with exists and was
    sent to the invitation's email."""
    return (
        db.session.scalar(
            select(Notification.id).where(
                Notification.id == notification_id, Notification.email_id == invitation.email_id
            )
        )
        is not None
    )


@dataclass
class InvitationCheck:
    invitation: Invitation | None
    problem: str | None  # tampered, expired, used, revoked, replaced, email_changed, login_off

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_invitation(token: str) -> InvitationCheck:
    """What this link is, against the database as it is now (R-LOG-4)."""
    try:
        payload = tokens.read(tokens.INVITATION, token)
    except tokens.InvalidToken:
        return InvitationCheck(None, "tampered")
    invitation_id, secret, notification_id = payload.get("i"), payload.get("s"), payload.get("n")
    if not isinstance(invitation_id, int) or not isinstance(secret or notification_id, str | int):
        return InvitationCheck(None, "tampered")
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None:
        return InvitationCheck(None, "tampered")
    if isinstance(secret, str):
        # a resend re-mints the digest of the same row only through a new row, so a digest
        # mismatch on an existing row means the link is not ours
        if not tokens.same_digest(secret, invitation.token_digest):
            return InvitationCheck(None, "tampered")
    elif not isinstance(notification_id, int) or not _notification_matches(
        notification_id, invitation
    ):
        # the activation banner of a notification email (R-NOT-2) carries a link to the same
        # invitation without re-minting its digest, so the invitation email's link keeps working
        return InvitationCheck(None, "tampered")
    if invitation.accepted_at is not None:
        return InvitationCheck(invitation, "used")
    if invitation.revoked_at is not None:
        return InvitationCheck(invitation, invitation.revoked_reason or "revoked")
    email = db.session.get(ContactEmail, invitation.email_id)
    if email is None or email.address != invitation.address:
        return InvitationCheck(invitation, "email_changed")
    if not invitation.is_live:  # outstanding, so: expired
        return InvitationCheck(invitation, "expired")
    settings = db.session.scalar(
        select(ContactSettings).where(
            ContactSettings.account_id == invitation.account_id,
            ContactSettings.email_id == invitation.email_id,
        )
    )
    if settings is None or not settings.login:
        return InvitationCheck(invitation, "login_off")
    return InvitationCheck(invitation, None)


def accept_invitation(invitation: Invitation, password: str, confirm: str) -> PortalUser:
    """R-LOG-3: create (or re-activate) the portal user and consume the invitation."""
    email = db.session.get(ContactEmail, invitation.email_id)
    assert email is not None
    check_new_password(password, confirm, address=email.address)
    # single use even under a double submit: only one request flips accepted_at
    claimed = db.session.execute(
        update(Invitation)
        .where(
Invitation.id == invitation.id, Invitation.is_outstanding)
        .values(accepted_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        raise Conflict("This invitation has already been used.", code="used")
    user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == email.id))
    if user is None:
        # the firm's time zone until the client picks their own (the weekly email's 09:00)
        firm_timezone = db.session.scalar(select(Firm.timezone).where(Firm.id == invitation.firm_id))
        user = PortalUser(firm_id=invitation.firm_id, email_id=email.id, timezone=firm_timezone or "UTC")
        db.session.add(user)
    user.password_hash = hash_password(password)
    user.activated_at = utcnow()
    user.session_token = new_session_token()
    user.current_account_id = invitation.account_id
    user.language = user.language or invitation.language
    # other open invitations of this email (other accounts) are fulfilled by this activation
    db.session.execute(
        update(Invitation)
        .where(
Invitation.email_id == email.id, Invitation.is_outstanding)
        .values(accepted_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.flush()
    return user


def request_new_invitation(invitation: Invitation) -> InboxItem:
    """The client asks for a fresh link; staff hear of it in Inbox+ (R-LOG-4)."""
    account = db.session.get(Account, invitation.account_id)
    item = InboxItem(
        firm_id=invitation.firm_id,
        account_id=invitation.account_id,
        kind="invitation_request",
        title=f"{invitation.address} asks for a new portal invitation",
        body=f"Their invitation to {account.name if account else 'the portal'} can no longer be used.",
        data={"email_id": str(invitation.email_id), "account_id": str(invitation.account_id)},
    )
    db.session.add(item)
    db.session.flush()
    return item

"""The invitation block of contact settings: not_invited / invited / expired / activated."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from portal_app.extensions import db
from portal_app.models import Invitation, OutboxEmail, PortalUser


def latest_delivery(invitation_ids: list[int]) -> dict[int, OutboxEmail]:
    """The newest outbox row of each invitation."""
    if not invitation_ids:
        return {}
    rows = db.session.scalars(
        select(OutboxEmail).where(OutboxEmail.invitation_id.in_(invitation_ids)).order_by(OutboxEmail.id)
    ).all()
    return {row.invitation_id: row for row in rows if row.invitation_id is not None}


def invitation_states(account_id: int, email_ids: list[int]) -> dict[int, dict[str, Any]]:
    """State per email on one account, in two queries whatever the number of emails."""
    if not email_ids:
        return {}
    activated = set(
        db.session.scalars(
            select(PortalUser.email_id).where(
                PortalUser.email_id.in_(email_ids),
                PortalUser.is_activated,
            )
        )
    )
    # open invitations, and for activated emails the accepted one too: staff still see when the
    # invitation that led to the activation was sent
    candidates = db.session.scalars(
        select(Invitation)
        .where(
            Invitation.account_id == account_id,
            Invitation.email_id.in_(email_ids),
            Invitation.revoked_at.is_(None),
        )
        .order_by(Invitation.id)
    ).all()
    latest = {
        inv.email_id: inv
        for inv in candidates
        if inv.accepted_at is None or inv.email_id in activated
    }  # the newest wins
    deliveries = latest_delivery([inv.id for inv in latest.values()])
    states: dict[int, dict[str, Any]] = {}
    for email_id in email_ids:
        invitation = latest.get(email_id)
        sent_at = invitation.sent_at or invitation.created_at if invitation else None
        expires_at = invitation.expires_at if invitation else None
        if email_id in activated:
            state = "activated"
        elif invitation is None:
            state = "not_invited"
        elif not invitation.is_live:  # outstanding (not activated), so: expired
            state = "expired"
        else:
            state = "invited"
        delivery = deliveries.get(invitation.id) if invitation else None
        states[email_id] = {
            "state": state,
            "sent_at": sent_at,
            "expires_at": expires_at,
            "delivery": delivery.state if delivery and state != "activated" else None,
            "delivery_error": delivery.last_error or None
            if delivery and delivery.state == "failed"
            else None,
        }
    return states

"""Invitations and access grants, as staff give them (R-LOG-1, R-LOG-2, R-LOG-5..8); the link
a client follows is ``activation``, password resets are ``client_passwords``.

Raw tokens never touch the database, a job argument or Redis: a request only writes an
invitation row and an outbox row; the mail job mints the link when it renders the email and
stores a digest of the token's secret part (R-SEC-9). Every use of a link re-checks the
database: digest, expiry, address, revocation and single use (R-SEC-6).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from portal_app.extensions import db
from portal_app.mail.outbox import (
    enqueue_delivery,
    firm_name,
    outbox_row,
)
from portal_app.models import (
    Account,
    ContactEmail,
    ContactSettings,
    Invitation,
    OutboxEmail,
    PortalUser,
    StaffUser,
    new_session_token,
    utcnow,
)
from portal_app.services.errors import Conflict, ValidationFailed
from portal_app.sql import chunks, id_in

MAX_MESSAGE_LENGTH = 2000


# --- state -------------------------------------------------------------------------------------


def activated_user(email_id: int) -> PortalUser | None:
    user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == email_id))
    return user if user is not None and user.is_active else None


def revoke_outstanding(*, email_id: int, reason: str, account_id: int | None = None) -> int:
    """Revoke open invitations of an email (on one account, or all); return how many."""
    query = (
        update(Invitation)
        .where(
            Invitation.email_id == email_id,
            Invitation.is_outstanding,
        )
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if account_id is not None:
        query = query.where(Invitation.account_id == account_id)
    return db.session.execute(query).rowcount


# --- staff actions -----------------------------------------------------------------------------


def send_invitation(
    settings: ContactSettings, *, sent_by: StaffUser | None, message: str = "", language: str | None = None
) -> Invitation:
    """Invite (or re-invite) this email to the portal for this account (R-LOG-1, R-LOG-5).

    `language` (en, de) is the email's and the activation page's; without it the email is in the
    language of the address's earlier portal login, if any, else English, and the page follows
    the browser."""
    [invitation] = send_invitations([settings], sent_by=sent_by, message=message, language=language)
    return invitation


def send_invitations(
    rows: Sequence[ContactSettings],
    *,
    sent_by: StaffUser | None,
    message: str = "",
    language: str | None = None,
) -> list[Invitation]:
    """Invite many (account, email) rows at once, in a fixed number of statements per call:
    earlier open invitations of each pair are replaced, one invitation and one outbox row per
    pair are inserted, and one delivery job follows the commit (R-LOG-1, R-LOG-5)."""
    if not rows:
        return []
    if any(not settings.login for settings in rows):
        raise Conflict("Turn login on for this email before inviting it.", code="login_off")
    email_ids = sorted({settings.email_id for settings in rows})
    users = {
        user.email_id: user
        for user in db.session.scalars(select(PortalUser).where(id_in(PortalUser.email_id, email_ids)))
    }
    if any(users.get(settings.email_id) and users[settings.email_id].is_active for settings in rows):
        raise Conflict("This email has already activated its portal login.", code="already_activated")
    message = (message or "").strip()
    if len(message) > MAX_MESSAGE_LENGTH:
        raise ValidationFailed(
            "The personal message is too long.",
            fields={"invitation_message": [f"At most {MAX_MESSAGE_LENGTH} characters."]},
        )
    revoke_outstanding_pairs(
        [(settings.account_id, settings.email_id) for settings in rows], reason="replaced"
    )
    addresses = {
        email_id: address
        for email_id, address in db.session.execute(
            select(ContactEmail.id, ContactEmail.address).where(id_in(ContactEmail.id, email_ids))
        )
    }
    expires_at = utcnow() + timedelta(days=current_app.config["INVITATION_MAX_AGE_DAYS"])
    invitations = [
        Invitation(
            firm_id=settings.firm_id,
            account_id=settings.account_id,
            email_id=settings.email_id,
            address=addresses[settings.email_id],
            message=message,
            language=language,
            sent_by_id=sent_by.id if sent_by else None,
            # live from now (the delivery job restarts the clock when it sends the link), so a
            # notification rendered before the invitation email still finds it outstanding (R-NOT-2)
            expires_at=expires_at,
        )
        for settings in rows
    ]
    db.session.add_all(invitations)
    db.session.flush()
    firm_names = {firm_id: firm_name(firm_id) for firm_id in {settings.firm_id for settings in rows}}
    staff_name = (sent_by.name or sent_by.email) if sent_by else ""
    db.session.add_all(
        outbox_row(
            firm_id=invitation.firm_id,
            kind="invitation",
            to_address=invitation.address,
            subject=_l("%(firm)s invites you to your client portal", firm=firm_names[invitation.firm_id]),
            template="invitation",
            context={"message": message, "staff_name": staff_name},
            invitation_id=invitation.id,
            language=language
            or (users[invitation.email_id].language if invitation.email_id in users else None),
        )
        for invitation in invitations
    )
    db.session.flush()
    enqueue_delivery()
    return invitations


def grant_access(settings: ContactSettings) -> OutboxEmail:
    """R-LOG-6: an activated user gets this account at once, and an email saying so."""
    [row] = grant_access_many([settings])
    return row


def grant_access_many(rows: Sequence[ContactSettings]) -> list[OutboxEmail]:
    """R-LOG-6 for many rows: one "access granted" email each, in a few queries."""
    if not rows:
        return []
    names = {
        account_id: name
        for account_id, name in db.session.execute(
            select(Account.id, Account.name).where(id_in(Account.id, {r.account_id for r in rows}))
        )
    }
    people = {
        email_id: (address, language)
        for email_id, address, language in db.session.execute(
            select(ContactEmail.id, ContactEmail.address, PortalUser.language)
            .outerjoin(PortalUser, PortalUser.email_id == ContactEmail.id)
            .where(id_in(ContactEmail.id, {r.email_id for r in rows}))
        )
    }
    firms = {firm_id: firm_name(firm_id) for firm_id in {r.firm_id for r in rows}}
    outbox = [
        outbox_row(
            firm_id=settings.firm_id,
            kind="access_granted",
            to_address=people[settings.email_id][0],
            subject=_l(
                "%(firm)s gave you access to %(account)s",
                firm=firms[settings.firm_id],
                account=names[settings.account_id],
            ),
            template="access_granted",
            context={"account_name": names[settings.account_id]},
            language=people[settings.email_id][1],
        )
        for settings in rows
    ]
    db.session.add_all(outbox)
    db.session.flush()
    enqueue_delivery()
    return outbox


def activated_email_ids(email_ids: Iterable[int]) -> set[int]:
    """Which of these emails belong to an activated portal user."""
    found: set[int] = set()
    for chunk in chunks(email_ids):
        found.update(
            db.session.scalars(
                select(PortalUser.email_id).where(
                    id_in(PortalUser.email_id, chunk),
                    PortalUser.is_activated,
                )
            )
        )
    return found


def _open_invitations(
    pairs: Sequence[tuple[int, int]], *, live_only: bool = False
) -> list[tuple[int, int, int]]:
    """(id, account, email) of the open invitations of these (account, email) pairs: looked up
    by account, then matched to the exact pairs (an account has a handful of emails)."""
    wanted = set(pairs)
    found: list[tuple[int, int, int]] = []
    for chunk in chunks({account_id for account_id, _ in wanted}):
        query = select(Invitation.id, Invitation.account_id, Invitation.email_id).where(
            id_in(Invitation.account_id, chunk),
            Invitation.is_live if live_only else Invitation.is_outstanding,
        )
        found.extend((i, a, e) for i, a, e in db.session.execute(query) if (a, e) in wanted)
    return found


def live_invitation_pairs(pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
    """(account, email) pairs with an invitation that can still be used (or is still on its way)."""
    return {(a, e) for _, a, e in _open_invitations(pairs, live_only=True)}


def revoke_outstanding_pairs(pairs: Sequence[tuple[int, int]], *, reason: str) -> int:
    """Revoke the open invitations of these (account, email) pairs (R-LOG-7); return how many."""
    ids = [invitation_id for invitation_id, _, _ in _open_invitations(pairs)] if pairs else []
    if ids:
        for chunk in chunks(ids):
            db.session.execute(
                update(Invitation)
                .where(id_in(Invitation.id, chunk))
                .values(revoked_at=utcnow(), revoked_reason=reason)
                .execution_options(synchronize_session=False)
            )
    return len(ids)


def revoke_invitation(settings: ContactSettings) -> None:
    if not revoke_outstanding(email_id=settings.email_id, account_id=settings.account_id, reason="revoked"):
        raise Conflict("There is no outstanding invitation to revoke.", code="no_invitation")


def address_changed(email: ContactEmail, old_address: str) -> None:
    """R-LOG-8: the old address's invitations die; an activated login is reset; every
    account with login on invites the new address."""
    revoke_outstanding(email_id=email.id, reason="email_changed")
    user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == email.id))
    if user is not None:
        user.password_hash = None
        user.activated_at = None
        user.session_token = new_session_token()  # ends every session at once
    rows = db.session.scalars(
        select(ContactSettings).where(ContactSettings.email_id == email.id, ContactSettings.login.is_(True))
    ).all()
    for settings in rows:
        send_invitation(settings, sent_by=None)

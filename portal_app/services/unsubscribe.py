"""One-click unsubscribe (RFC 8058, R-NOT-7): what a signed link switches off, and switching it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from portal_app import tokens
from portal_app.extensions import db
from portal_app.models import Account, ContactEmail, ContactSettings, PortalUser
from portal_app.services.audit import Actor
from portal_app.services.notifications import CATEGORY_LABELS
from portal_app.services.settings import apply_settings_change


@dataclass
class Unsubscribe:
    email: ContactEmail
    category: str
    settings: list[ContactSettings]  # the rows this link switches the category off on
    accounts: list[str]


def read_unsubscribe(token: str) -> Unsubscribe | None:
    """What an unsubscribe link would switch off, or None when it is not one of ours."""
    try:
        payload = tokens.read(tokens.UNSUBSCRIBE, token)
    except tokens.InvalidToken:
        return None
    email_id, category, account_id = payload.get("e"), payload.get("c"), payload.get("a")
    if not isinstance(email_id, int) or category not in CATEGORY_LABELS:
        return None
    if account_id is not None and not isinstance(account_id, int):
        return None
    email = db.session.get(ContactEmail, email_id)
    if email is None:
        return None
    query = select(ContactSettings, Account.name).join(Account, Account.id == ContactSettings.account_id)
    query = query.where(ContactSettings.email_id == email_id)
    if account_id is not None:
        query = query.where(ContactSettings.account_id == account_id)
    rows = db.session.execute(query.order_by(Account.name)).all()
    return Unsubscribe(
        email=email,
        category=category,
        settings=[row for row, _name in rows],
        accounts=[name for _row, name in rows],
    )


def unsubscribe(link: Unsubscribe) -> int:
    """Switch the link's category off for its email (on its account, or on every account for
    the weekly email), audited with the client as the actor; return how many rows changed."""
    rows = [row for row in link.settings if row.notification_preferences.get(link.category, True)]
    if not rows:
        return 0
    user_id = db.session.scalar(select(PortalUser.id).where(PortalUser.email_id == link.email.id))
    report = apply_settings_change(
        rows,
        {"notification_preferences": {link.category: False}},
        actor=Actor("portal", user_id, label=link.email.address),
    )
    return report.emails_changed

"""What a notification email learns only at send time (the outbox's context for its templates):
whether it still goes, its activation banner and link, its portal link and its one-click
unsubscribe link. Minted here, so the state at sending time decides (a client who activated
meanwhile gets no banner)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from portal_app import tokens
from portal_app.extensions import db
from portal_app.mail.outbox import absolute_url
from portal_app.models import (
    Account,
    ContactEmail,
    ContactSettings,
    Document,
    Firm,
    Invitation,
    Notification,
    OutboxEmail,
    PortalUser,
    Todo,
)
from portal_app.services import action_links
from portal_app.services.notifications import CATEGORY_LABELS
from portal_app.sql import id_in

NOTIFICATION_TEMPLATES = (
    "todo_new",
    "todo_reminder",
    "weekly_transactions",
    "document_new",
    "request_reopened",
)


def _outstanding_invitation(email_id: int, account_ids: list[int]) -> Invitation | None:
    """The email's live invitation (preferring one of these accounts), sent or about to be."""
    candidates = db.session.scalars(
        select(Invitation)
        .where(Invitation.email_id == email_id, Invitation.is_live)
        .order_by(Invitation.id.desc())
    ).all()
    return next((i for i in candidates if i.account_id in account_ids), candidates[0] if candidates else None)


def _action_link(
    email: ContactEmail,
    account_id: int,
    *,
    todo: Todo | None,
    document: Document | None,
    language: str | None,
) -> str | None:
    """R-LFA-2: "Open without logging in", when the firm allows acting on this item so."""
    account = db.session.get(Account, account_id)
    if account is None:
        return None
    token = action_links.mint(
        db.session.get_one(Firm, account.firm_id),
        email=email,
        account_id=account_id,
        todo=todo,
        document_ids=[document.id] if document is not None else [],
        language=language,
    )
    return absolute_url("portal.action_link", token=token) if token else None


def notification_context(row: OutboxEmail) -> dict[str, Any] | None:
    """What only the sending job may know: the current state decides whether the email still
    goes (a to-do done meanwhile sends no reminder) and whether it carries the banner."""
    context = row.context
    notification = db.session.scalar(select(Notification).where(Notification.outbox_id == row.id))
    if notification is None:
        return None
    email = db.session.get(ContactEmail, notification.email_id)
    if email is None or email.address != row.to_address:
        return None  # the address changed: this email was for the old one
    category = context["category"]
    if row.template == "weekly_transactions":
        account_ids = [entry["id"] for entry in context["accounts"]]
    elif row.template == "document_new":
        account_ids = [context["account_id"]]
        document = db.session.get(Document, context["document_id"])
        todo = None
        if document is None or not document.visible_to_client:
            return None  # hidden or removed since: nothing to tell
    else:
        account_ids = [context["account_id"]]
        todo = db.session.get(Todo, context["todo_id"])
        document = None
        if todo is None or (row.template in ("todo_reminder", "request_reopened") and todo.state != "open"):
            return None  # reminders stop the moment the to-do is done (R-NOT-3)
    settings = db.session.scalars(
        select(ContactSettings).where(
            ContactSettings.email_id == email.id, id_in(ContactSettings.account_id, account_ids)
        )
    ).all()
    if not any(s.notify and s.notification_preferences.get(category, True) for s in settings):
        return None  # switched off since it was decided
    user = db.session.scalar(select(PortalUser).where(PortalUser.email_id == email.id))
    activated = user is not None and user.is_activated
    extra: dict[str, Any] = {
        "address": email.address,
        "category_label": str(CATEGORY_LABELS[category]),
        "portal_link": absolute_url(
            "portal.account_documents" if row.template == "document_new" else "portal.account_home",
            account_id=account_ids[0],
        )
        if len(account_ids) == 1
        else absolute_url("portal.home"),
        "banner": not activated and any(s.login for s in settings),
        "banner_link": None,
    }
    if context.get("due_date"):
        extra["due"] = date.fromisoformat(context["due_date"])
    if row.template == "weekly_transactions":
        extra["accounts"] = [
            {
                **entry,
                "todos": [
                    {**t, "due": date.fromisoformat(t["due_date"]) if t["due_date"] else None}
                    for t in entry["todos"]
                ],
            }
            for entry in context["accounts"]
        ]
    if extra["banner"]:
        invitation = _outstanding_invitation(email.id, account_ids)
        if invitation is not None:
            token = tokens.mint(tokens.INVITATION, {"i": invitation.id, "n": notification.id})
            extra["banner_link"] = absolute_url("portal.activate", token=token)
    if row.template != "weekly_transactions":
        extra["action_link"] = _action_link(
            email, account_ids[0], todo=todo, document=document, language=context.get("language")
        )
    if row.template not in (
        "todo_new",
        "document_new",
        "request_reopened",
    ):  # reminders and the weekly email are lists one may leave
        token = tokens.mint(
            tokens.UNSUBSCRIBE,
            {
                "e": email.id,
                "c": category,
                "a": None if row.template == "weekly_transactions" else account_ids[0],
            },
        )
        extra["list_unsubscribe"] = absolute_url("portal.unsubscribe", token=token)
    return extra

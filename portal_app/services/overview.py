"""The account profile's Overview tab (seed 004): in a fixed number of queries, whatever the
account's size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from portal_app.extensions import db
from portal_app.models import ContactEmail, ContactSettings, Document, Message, Note, PortalUser, Thread, Todo
from portal_app.services.lookup import newest_on_account
from portal_app.services.todos import SIGNING_KINDS

LATEST = 5


@dataclass
class Overview:
    documents: list[Document]
    communication: list[tuple[Message, str]]  # (message, thread subject)
    approvals: list[Todo]
    signatures: list[Todo]
    login_activity: list[tuple[str, datetime | None]]
    notes: list[Note]


def overview(account_id: int) -> Overview:
    documents = newest_on_account(Document, account_id, limit=LATEST)
    communication = [
        (message, subject)
        for message, subject in db.session.execute(
            select(Message, Thread.subject)
            .join(Thread, Thread.id == Message.thread_id)
            .where(Message.account_id == account_id)
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(LATEST)
        ).all()
    ]
    open_todos = list(
        db.session.scalars(
            select(Todo)
            .where(
                Todo.account_id == account_id,
                Todo.state == "open",
                Todo.kind.in_(["documents_approval", *SIGNING_KINDS, "invoices_payments"]),
            )
            .order_by(Todo.due_date.is_(None), Todo.due_date, Todo.id)
        )
    )
    approvals = [t for t in open_todos if t.kind == "documents_approval"]
    signatures = [
        t
        for t in open_todos
        if t.kind in SIGNING_KINDS or (t.kind == "invoices_payments" and t.requires_signature)
    ]
    login_activity = [
        (address, last_login_at)
        for address, last_login_at in db.session.execute(
            select(ContactEmail.address, PortalUser.last_login_at)
            .join(ContactSettings, ContactSettings.email_id == ContactEmail.id)
            .join(PortalUser, PortalUser.email_id == ContactEmail.id)
            .where(ContactSettings.account_id == account_id, ContactSettings.login.is_(True))
            .order_by(PortalUser.last_login_at.desc().nulls_last(), ContactEmail.address)
        ).all()
    ]
    notes = newest_on_account(Note, account_id, limit=LATEST)
    return Overview(documents, communication, approvals, signatures, login_activity, notes)

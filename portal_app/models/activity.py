"""To-dos, Inbox+ items, the audit trail and the email outbox."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from portal_app.extensions import db
from portal_app.orm import BigId, UTCDateTime, utcnow

OUTBOX_STATES = ("pending", "sending", "sent", "failed")
TODO_STATES = ("open", "done")
TODO_ACTIONS = ("signed", "approved", "done")


class Todo(db.Model):
    """Something an account's client must do; ``kind`` is a notification category.

    ``next_reminder_at`` is when reminder ``reminders_sent + 1`` is due (None: no more reminders,
    or the to-do is done); reminder *n* is due ``n x reminder_every_days`` days after creation
    (R-NOT-3)."""

    __tablename__ = "todos"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "firm_id"], ["accounts.id", "accounts.firm_id"], ondelete="CASCADE"
        ),
        CheckConstraint("state in ('open', 'done')", name="state_known"),
        CheckConstraint(
            "done_action IS NULL OR done_action IN ('signed', 'approved', 'done')", name="action_known"
        ),
        CheckConstraint("done_via IS NULL OR done_via IN ('portal', 'email_link')", name="via_known"),
        CheckConstraint("reminder_every_days BETWEEN 0 AND 365", name="reminder_every_days_range"),
        CheckConstraint("reminder_max BETWEEN 0 AND 52", name="reminder_max_range"),
        Index("ix_todos_account_id_state", "account_id", "state"),
        Index("ix_todos_next_reminder_at", "next_reminder_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    due_date: Mapped[date | None] = mapped_column()
    requires_signature: Mapped[bool] = mapped_column(default=False)
    # how many documents the client reads first (todo_documents), kept by the service so the
    # portal home looks them up only for to-dos that have some
    document_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # the items of a client request (R-REQ-1); 0 for every other to-do
    item_count: Mapped[int] = mapped_column(default=0, server_default="0")
    state: Mapped[str] = mapped_column(String(8), default="open")
    reminder_every_days: Mapped[int] = mapped_column(default=3)
    reminder_max: Mapped[int] = mapped_column(default=3)
    reminders_sent: Mapped[int] = mapped_column(default=0)
    next_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # who completed it: a client's email (signed / approved / done) or a staff user (done)
    done_action: Mapped[str | None] = mapped_column(String(16))
    done_by_address: Mapped[str | None] = mapped_column(String(254))
    done_by_email_id: Mapped[int | None] = mapped_column(ForeignKey("contact_emails.id", ondelete="SET NULL"))
    done_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    # where a client completed it: "portal" (signed in) or "email_link" (R-LFA-3); None for staff
    done_via: Mapped[str | None] = mapped_column(String(16))
    # how often it was opened again after being done: an action link names the count it was
    # minted at, so a link from before a reopen stays dead (R-LFA-2)
    times_reopened: Mapped[int] = mapped_column(default=0, server_default="0")


REQUEST_ITEM_TYPES = ("upload", "answer")


class TodoItem(db.Model):
    """One item of a client request (R-REQ-1): a file to upload or a question to answer.
    ``complete`` is kept by the service: set by a file or a non-empty answer, cleared when staff
    reopen the item with a comment."""

    __tablename__ = "todo_items"
    __table_args__ = (CheckConstraint("type in ('upload', 'answer')", name="type_known"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    todo_id: Mapped[int] = mapped_column(BigId, ForeignKey("todos.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    label: Mapped[str] = mapped_column(String(300))
    type: Mapped[str] = mapped_column(String(8))
    answer: Mapped[str | None] = mapped_column(Text)
    complete: Mapped[bool] = mapped_column(default=False)
    comment: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TodoDocument(db.Model):
    """A document a to-do asks the client to read: what they sign or approve (staff attach it
    when they create the to-do; the service keeps it on the to-do's own account)."""

    __tablename__ = "todo_documents"

    todo_id: Mapped[int] = mapped_column(BigId, ForeignKey("todos.id", ondelete="CASCADE"), primary_key=True)
    document_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(default=0)


class Notification(db.Model):
    """One notification email decided for one recipient (R-NOT-5): the unique key on
    (event_key, email_id) is what makes it exactly once. Written in the same transaction as
    its outbox row, so a crash leaves both or neither."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_key", "email_id"),
        CheckConstraint(
            "kind in ('todo_new', 'todo_reminder', 'weekly_transactions', 'document_new',"
            " 'request_reopened')",
            name="kind_known",
        ),
        Index("ix_notifications_email_id", "email_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"), index=True)
    # e.g. "todo:42:new", "todo:42:reminder:2", "weekly:2026-12-07"
    event_key: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))
    email_id: Mapped[int] = mapped_column(ForeignKey("contact_emails.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    todo_id: Mapped[int | None] = mapped_column(ForeignKey("todos.id", ondelete="SET NULL"), index=True)
    # the email's outbox row: rendering finds its notification by it
    outbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("outbox_emails.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboxItem(db.Model):
    """A notification for staff: to one staff user, or to all staff of the firm."""

    __tablename__ = "inbox_items"
    __table_args__ = (Index("ix_inbox_items_firm_id_created_at", "firm_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"))
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(db.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InboxRead(db.Model):
    """That one staff user has read one Inbox+ item."""

    __tablename__ = "inbox_reads"

    item_id: Mapped[int] = mapped_column(ForeignKey("inbox_items.id", ondelete="CASCADE"), primary_key=True)
    staff_user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True
    )
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(db.Model):
    """Who changed which setting of which email on which account, when, old -> new."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_firm_id_id", "firm_id", "id"),
        Index("ix_audit_entries_account_id", "account_id"),
        Index("ix_audit_entries_email_id", "email_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"))
    # History outlives what it describes: references are nulled, names are kept.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    email_id: Mapped[int | None] = mapped_column(ForeignKey("contact_emails.id", ondelete="SET NULL"))
    address: Mapped[str] = mapped_column(String(254), default="")
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[int | None] = mapped_column(BigId)
    actor_label: Mapped[str] = mapped_column(String(254), default="")
    field: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[object | None] = mapped_column(db.JSON)
    new_value: Mapped[object | None] = mapped_column(db.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxEmail(db.Model):
    """An email waiting to be delivered, written in the transaction that causes it."""

    __tablename__ = "outbox_emails"
    __table_args__ = (
        CheckConstraint("state in ('pending', 'sending', 'sent', 'failed')", name="state_known"),
        Index("ix_outbox_emails_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int | None] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    template: Mapped[str] = mapped_column(String(64))
    # Rendering context; never a secret: links with tokens are minted inside the job.
    context: Mapped[dict] = mapped_column(db.JSON, default=dict)
    invitation_id: Mapped[int | None] = mapped_column(ForeignKey("invitations.id", ondelete="SET NULL"))
    # an emailed sign-in code: the code itself is minted when the email is rendered
    email_code_id: Mapped[int | None] = mapped_column(ForeignKey("email_codes.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

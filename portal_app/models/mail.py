"""Email sync (R-SYN-*): threads and messages on an account's Communication › Email tab, the
record that makes a delivery idempotent, attachments; and the account's documents and notes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from portal_app.extensions import db
from portal_app.orm import BigId, UTCDateTime, utcnow


class InboundMessage(db.Model):
    """One received message per firm, whichever way it came (R-SYN-5): the unique key is its
    Message-ID, or the SHA-256 of its bytes when it has none. The raw bytes are kept under
    DOCUMENTS_DIR by that SHA-256, so a message can be parsed again and downloaded as .eml."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("firm_id", "dedupe_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"))
    dedupe_key: Mapped[str] = mapped_column(String(300))
    raw_sha256: Mapped[str] = mapped_column(String(64))
    raw_size: Mapped[int] = mapped_column()
    via: Mapped[str] = mapped_column(String(8))  # "http" | "imap"
    accounts_stored: Mapped[int] = mapped_column(default=0)  # 0: kept nowhere (R-SYN-3)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Thread(db.Model):
    __tablename__ = "threads"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "firm_id"], ["accounts.id", "accounts.firm_id"], ondelete="CASCADE"
        ),
        Index("ix_threads_account_id_subject_key", "account_id", "subject_key"),
        Index("ix_threads_account_id_last_message_at", "account_id", "last_message_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[int] = mapped_column(BigId)
    subject: Mapped[str] = mapped_column(String(500), default="")
    subject_key: Mapped[str] = mapped_column(String(500), default="")  # without Re:/AW:/Fwd:…, lower-case
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(db.Model):
    """One message of a thread: a synced client email (in) or a staff reply (out)."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("direction in ('in', 'out')", name="direction_known"),
        Index("ix_messages_thread_id_sent_at", "thread_id", "sent_at"),
        Index("ix_messages_account_id_sent_at", "account_id", "sent_at"),
        Index("ix_messages_firm_id_message_id", "firm_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    thread_id: Mapped[int] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id", ondelete="SET NULL"))
    direction: Mapped[str] = mapped_column(String(3))
    message_id: Mapped[str] = mapped_column(String(300), default="")  # <…@…>, ours for replies
    in_reply_to: Mapped[str] = mapped_column(String(300), default="")
    references: Mapped[str] = mapped_column(Text, default="")
    from_address: Mapped[str] = mapped_column(String(254), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    to: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    html: Mapped[str] = mapped_column(Text, default="")  # sanitised
    notice: Mapped[str] = mapped_column(Text, default="")  # e.g. parts that could not be read
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox_emails.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageAttachment(db.Model):
    __tablename__ = "message_attachments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column()
    content_type: Mapped[str] = mapped_column(String(127), default="application/octet-stream")
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id", ondelete="SET NULL"))
    skipped_reason: Mapped[str | None] = mapped_column(String(200))


DOCUMENT_SCANS = ("clean", "pending", "infected", "not_scanned")


class Document(db.Model):
    """A file on an account, kept under DOCUMENTS_DIR by its SHA-256; NEW until a staff user of
    the firm opens it. Uploaded by staff (``uploaded_by_id``), by a client (``uploaded_by_email_id``
    with the name and address they had then), or saved from a synced email. ``scan`` is what
    clamd said (R-DOC-4): only ``clean`` and ``not_scanned`` files are ever served."""

    __tablename__ = "documents"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "firm_id"], ["accounts.id", "accounts.firm_id"], ondelete="CASCADE"
        ),
        CheckConstraint("source in ('upload', 'email', 'client')", name="source_known"),
        CheckConstraint("scan in ('clean', 'pending', 'infected', 'not_scanned')", name="scan_known"),
        Index("ix_documents_account_id_name", "account_id", "name"),
        Index("ix_documents_account_id_created_at", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[int] = mapped_column(BigId)
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column()
    content_type: Mapped[str] = mapped_column(String(127), default="application/octet-stream")
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(8))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    uploaded_by_email_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_emails.id", ondelete="SET NULL"), index=True
    )
    uploaded_by_name: Mapped[str | None] = mapped_column(String(200))
    uploaded_by_address: Mapped[str | None] = mapped_column(String(254))
    visible_to_client: Mapped[bool] = mapped_column(default=False, server_default=false())
    request_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("todo_items.id", ondelete="SET NULL"), index=True
    )
    scan: Mapped[str] = mapped_column(String(12), default="not_scanned", server_default="not_scanned")
    scan_signature: Mapped[str | None] = mapped_column(String(200))
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def servable(self) -> bool:
        """Scanned clean, or scanning is off: the only files anyone may download."""
        return self.scan in ("clean", "not_scanned")


class Note(db.Model):
    __tablename__ = "notes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "firm_id"], ["accounts.id", "accounts.firm_id"], ondelete="CASCADE"
        ),
        Index("ix_notes_account_id_created_at", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[int] = mapped_column(BigId)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    author_name: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

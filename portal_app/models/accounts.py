"""Client accounts, contacts, their emails, links and per-email contact settings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    and_,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal_app.extensions import db
from portal_app.orm import BigId, UTCDateTime, utcnow

ACCOUNT_TYPES = ("individual", "company")
# The yes/no settings of one contact email on one account, declared once: what the settings PATCH
# may change, what the bulk update switches (R-BLK-1) and what an import row may set (R-IMP-2).
SETTING_FLAGS = ("login", "notify", "email_sync", "auto_save_attachments", "signatory")
BULK_FLAGS = ("login", "notify", "email_sync")
IMPORT_FLAGS = ("login", "notify", "email_sync", "signatory")

NOTIFICATION_CATEGORIES = (
    "documents_upload",
    "documents_signature",
    "documents_approval",
    "messages_tasks",
    "proposals",
    "organizers",
    "invoices_payments",
    "client_requests",
    "transactions",
)


def default_notification_preferences() -> dict[str, bool]:
    """Return every notification category switched on (SPEC §3)."""
    return {category: True for category in NOTIFICATION_CATEGORIES}


class Account(db.Model):
    """A client account: the unit the firm works and bills for."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("id", "firm_id"),
        CheckConstraint("type in ('individual', 'company')", name="type_known"),
        # R-ACC-1: company fields belong to company accounts only.
        CheckConstraint(
            "type = 'company' OR (company_name IS NULL AND company_address IS NULL)",
            name="company_fields_only_for_companies",
        ),
        # The account list sorts and pages by (lower(name), id) within a firm.
        Index("ix_accounts_firm_id_lower_name_id", "firm_id", text("lower(name)"), "id"),
        # The firm's own client number; imports match on it (R-IMP-4).
        UniqueConstraint("firm_id", "external_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(16), default="individual")
    company_name: Mapped[str | None] = mapped_column(String(200))
    company_address: Mapped[str | None] = mapped_column(Text)
    # the account photo (R-PHO-1): the digest of the upload it was made from; its 256 and 64
    # pixel squares live under DOCUMENTS_DIR/photos by it
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    custom_fields: Mapped[dict] = mapped_column(db.JSON, default=dict)
    # Lower-cased name, linked contacts' names and emails, for `q` (services/search_text.py).
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Relationships are read-only: services set foreign keys explicitly, the database
    # cascades deletes, and no two relationships fight over the shared firm_id column.
    tags: Mapped[list[AccountTag]] = relationship(
        primaryjoin="foreign(AccountTag.account_id) == Account.id",
        viewonly=True,
        order_by="AccountTag.tag",
    )
    links: Mapped[list[AccountContact]] = relationship(
        primaryjoin="foreign(AccountContact.account_id) == Account.id", viewonly=True
    )

    @property
    def tag_names(self) -> list[str]:
        return [t.tag for t in self.tags]


class AccountTag(db.Model):
    __tablename__ = "account_tags"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "firm_id"], ["accounts.id", "accounts.firm_id"], ondelete="CASCADE"
        ),
        Index("ix_account_tags_firm_id_tag", "firm_id", "tag"),
    )

    account_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    firm_id: Mapped[int] = mapped_column(BigId)


class Contact(db.Model):
    """A person, who may be linked to several accounts."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("id", "firm_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"), index=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    middle_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    phones: Mapped[list] = mapped_column(db.JSON, default=list)
    addresses: Mapped[list] = mapped_column(db.JSON, default=list)
    custom_fields: Mapped[dict] = mapped_column(db.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    emails: Mapped[list[ContactEmail]] = relationship(
        primaryjoin="foreign(ContactEmail.contact_id) == Contact.id",
        viewonly=True,
        order_by="(ContactEmail.is_primary.desc(), ContactEmail.id)",
    )
    links: Mapped[list[AccountContact]] = relationship(
        primaryjoin="foreign(AccountContact.contact_id) == Contact.id", viewonly=True
    )

    @property
    def display_name(self) -> str:
        parts = (self.first_name, self.middle_name, self.last_name)
        return " ".join(p for p in parts if p) or (self.emails[0].address if self.emails else "")

    @property
    def sort_name(self) -> tuple[str, str, int]:
        return (self.last_name.casefold(), self.first_name.casefold(), self.id)


class ContactEmail(db.Model):
    """One email address of a contact; unique within a firm (R-CON-1)."""

    __tablename__ = "contact_emails"
    __table_args__ = (
        UniqueConstraint("firm_id", "address"),
        UniqueConstraint("id", "contact_id"),
        # Stored normalised, so the unique constraint compares case-insensitively (R-CON-1).
        CheckConstraint("address = lower(trim(address))", name="address_normalised"),
        ForeignKeyConstraint(
            ["contact_id", "firm_id"], ["contacts.id", "contacts.firm_id"], ondelete="CASCADE"
        ),
        Index("ix_contact_emails_contact_id", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(BigId)
    contact_id: Mapped[int] = mapped_column(BigId)
    address: Mapped[str] = mapped_column(String(254))
    label: Mapped[str] = mapped_column(String(64), default="")
    is_primary: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contact: Mapped[Contact] = relationship(
        primaryjoin="foreign(ContactEmail.contact_id) == Contact.id", viewonly=True
    )


class AccountContact(db.Model):
    """The link between an account and a contact, with per-account description."""

    __tablename__ = "account_contacts"
    __table_args__ = (
        # A link can only join an account and a contact of the same firm.
        ForeignKeyConstraint(
            ["account_id", "firm_id"], ["accounts.id", "accounts.firm_id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["contact_id", "firm_id"], ["contacts.id", "contacts.firm_id"], ondelete="CASCADE"
        ),
        Index("ix_account_contacts_contact_id", "contact_id"),
    )

    account_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(BigId)
    description: Mapped[str] = mapped_column(String(200), default="")
    signer_priority: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    account: Mapped[Account] = relationship(
        primaryjoin="foreign(AccountContact.account_id) == Account.id", viewonly=True
    )
    contact: Mapped[Contact] = relationship(
        primaryjoin="foreign(AccountContact.contact_id) == Contact.id", viewonly=True
    )


class ContactSettings(db.Model):
    """Login, notify, email sync and signatory for one (account, linked contact, email)."""

    __tablename__ = "contact_settings"
    __table_args__ = (
        UniqueConstraint("account_id", "email_id"),
        # Removed with the link (unlink) and with the email (email deleted).
        ForeignKeyConstraint(
            ["account_id", "contact_id"],
            ["account_contacts.account_id", "account_contacts.contact_id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["email_id", "contact_id"],
            ["contact_emails.id", "contact_emails.contact_id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["account_id", "firm_id"], ["accounts.id", "accounts.firm_id"], ondelete="CASCADE"
        ),
        Index("ix_contact_settings_email_id", "email_id"),
        Index("ix_contact_settings_contact_id", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(BigId)
    account_id: Mapped[int] = mapped_column(BigId)
    contact_id: Mapped[int] = mapped_column(BigId)
    email_id: Mapped[int] = mapped_column(BigId)
    login: Mapped[bool] = mapped_column(default=False)
    notify: Mapped[bool] = mapped_column(default=False)
    notification_preferences: Mapped[dict] = mapped_column(db.JSON, default=default_notification_preferences)
    email_sync: Mapped[bool] = mapped_column(default=False)
    auto_save_attachments: Mapped[bool] = mapped_column(default=False)
    signatory: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    email: Mapped[ContactEmail] = relationship(
        primaryjoin="foreign(ContactSettings.email_id) == ContactEmail.id", viewonly=True
    )
    contact: Mapped[Contact] = relationship(
        primaryjoin="foreign(ContactSettings.contact_id) == Contact.id", viewonly=True
    )

    @classmethod
    def lets_in(cls, email_id: int) -> ColumnElement[bool]:
        """The rows whose account this email's portal user may see: login on (R-POR-3, R-LOG-7).
        Every query of what a client may see or do goes through it."""
        return and_(cls.email_id == email_id, cls.login.is_(True))

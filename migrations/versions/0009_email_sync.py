"""Email sync: inbound messages, threads, messages and their attachments; documents; notes; the
firm's inbound secret

Revision ID: 0009
Revises: 0008
"""
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        yield


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id", "firm_id"], ["accounts.id", "accounts.firm_id"],
        name=op.f(f"fk_{table}_account_id_firm_id_accounts"), ondelete="CASCADE",
    )


def upgrade():
    with _quiet(), op.batch_alter_table("firms") as batch:
        batch.add_column(sa.Column("inbound_secret", sa.String(255), nullable=True))
        batch.add_column(sa.Column("inbound_secret_digest", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_firms_inbound_secret_digest", ["inbound_secret_digest"])
    op.create_table(
        "inbound_messages",
        sa.Column("id", BigId, nullable=False),
        sa.Column("firm_id", BigId, nullable=False),
        sa.Column("dedupe_key", sa.String(300), nullable=False),
        sa.Column("raw_sha256", sa.String(64), nullable=False),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("via", sa.String(8), nullable=False),
        sa.Column("accounts_stored", sa.Integer(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["firm_id"], ["firms.id"], name=op.f("fk_inbound_messages_firm_id_firms"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("firm_id", "dedupe_key", name=op.f("uq_inbound_messages_firm_id_dedupe_key")),
    )
    op.create_table(
        "threads",
        sa.Column("id", BigId, nullable=False),
        sa.Column("firm_id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("subject_key", sa.String(500), nullable=False),
        sa.Column("last_message_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _account_fk("threads"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threads")),
    )
    op.create_index("ix_threads_account_id_subject_key", "threads", ["account_id", "subject_key"])
    op.create_index("ix_threads_account_id_last_message_at", "threads", ["account_id", "last_message_at"])
    op.create_table(
        "documents",
        sa.Column("id", BigId, nullable=False),
        sa.Column("firm_id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(127), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("uploaded_by_id", BigId, nullable=True),
        sa.Column("opened_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("source in ('upload', 'email')", name=op.f("ck_documents_source_known")),
        _account_fk("documents"),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"], ["staff_users.id"], name=op.f("fk_documents_uploaded_by_id_staff_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
    )
    op.create_index("ix_documents_account_id_name", "documents", ["account_id", "name"])
    op.create_index("ix_documents_account_id_created_at", "documents", ["account_id", "created_at"])
    op.create_table(
        "messages",
        sa.Column("id", BigId, nullable=False),
        sa.Column("firm_id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("thread_id", BigId, nullable=False),
        sa.Column("inbound_id", BigId, nullable=True),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("message_id", sa.String(300), nullable=False),
        sa.Column("in_reply_to", sa.String(300), nullable=False),
        sa.Column("references", sa.Text(), nullable=False),
        sa.Column("from_address", sa.String(254), nullable=False),
        sa.Column("from_name", sa.String(200), nullable=False),
        sa.Column("to", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("notice", sa.Text(), nullable=False),
        sa.Column("sent_at", TS, nullable=False),
        sa.Column("staff_user_id", BigId, nullable=True),
        sa.Column("outbox_id", BigId, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("direction in ('in', 'out')", name=op.f("ck_messages_direction_known")),
        sa.ForeignKeyConstraint(["firm_id"], ["firms.id"], name=op.f("fk_messages_firm_id_firms"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_messages_account_id_accounts"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["thread_id"], ["threads.id"], name=op.f("fk_messages_thread_id_threads"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["inbound_id"], ["inbound_messages.id"], name=op.f("fk_messages_inbound_id_inbound_messages"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_users.id"], name=op.f("fk_messages_staff_user_id_staff_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox_emails.id"], name=op.f("fk_messages_outbox_id_outbox_emails"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
    )
    op.create_index("ix_messages_thread_id_sent_at", "messages", ["thread_id", "sent_at"])
    op.create_index("ix_messages_account_id_sent_at", "messages", ["account_id", "sent_at"])
    op.create_index("ix_messages_firm_id_message_id", "messages", ["firm_id", "message_id"])
    op.create_table(
        "message_attachments",
        sa.Column("id", BigId, nullable=False),
        sa.Column("message_id", BigId, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(127), nullable=False),
        sa.Column("document_id", BigId, nullable=True),
        sa.Column("skipped_reason", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_message_attachments_message_id_messages"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_message_attachments_document_id_documents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_attachments")),
    )
    op.create_index("ix_message_attachments_message_id", "message_attachments", ["message_id"])
    op.create_table(
        "notes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("firm_id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("author_id", BigId, nullable=True),
        sa.Column("author_name", sa.String(200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        _account_fk("notes"),
        sa.ForeignKeyConstraint(
            ["author_id"], ["staff_users.id"], name=op.f("fk_notes_author_id_staff_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notes")),
    )
    op.create_index("ix_notes_account_id_created_at", "notes", ["account_id", "created_at"])


def downgrade():
    for table in ("notes", "message_attachments", "messages", "documents", "threads", "inbound_messages"):
        op.drop_table(table)
    with _quiet(), op.batch_alter_table("firms") as batch:
        batch.drop_constraint("uq_firms_inbound_secret_digest", type_="unique")
        batch.drop_column("inbound_secret_digest")
        batch.drop_column("inbound_secret")

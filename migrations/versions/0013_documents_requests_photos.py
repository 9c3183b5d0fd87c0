"""Client documents, client requests and the account photo (SPEC §16): who uploaded a document
(staff or a client), whether the client sees it, its request item and its virus scan; the items
of a client request; the account photo's digest (replacing the free-text photo_url)

Revision ID: 0013
Revises: 0012
"""

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
KINDS_BEFORE = "kind in ('todo_new', 'todo_reminder', 'weekly_transactions')"
KINDS_NOW = (
    "kind in ('todo_new', 'todo_reminder', 'weekly_transactions', 'document_new', 'request_reopened')"
)


def upgrade():
    with warnings.catch_warnings():
        # SQLite rebuilds documents and notifications; reflecting the accounts table they refer to
        # skips its expression index, which stays as it is (accounts is not rebuilt)
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        _upgrade()


def _upgrade():
    op.create_table(
        "todo_items",
        sa.Column("id", ID, nullable=False),
        sa.Column("todo_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=300), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("type in ('upload', 'answer')", name=op.f("ck_todo_items_type_known")),
        sa.ForeignKeyConstraint(
            ["todo_id"], ["todos.id"], name="fk_todo_items_todo_id_todos", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_todo_items"),
    )
    op.create_index("ix_todo_items_todo_id", "todo_items", ["todo_id"])
    with op.batch_alter_table("todos") as batch:
        batch.add_column(sa.Column("item_count", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("uploaded_by_email_id", ID, nullable=True))
        batch.add_column(sa.Column("uploaded_by_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("uploaded_by_address", sa.String(length=254), nullable=True))
        batch.add_column(
            sa.Column("visible_to_client", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("request_item_id", ID, nullable=True))
        batch.add_column(
            sa.Column("scan", sa.String(length=12), nullable=False, server_default="not_scanned")
        )
        batch.add_column(sa.Column("scan_signature", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("scanned_at", TS, nullable=True))
        batch.create_foreign_key(
            "fk_documents_uploaded_by_email_id_contact_emails",
            "contact_emails",
            ["uploaded_by_email_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_foreign_key(
            "fk_documents_request_item_id_todo_items",
            "todo_items",
            ["request_item_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_documents_uploaded_by_email_id", ["uploaded_by_email_id"])
        batch.create_index("ix_documents_request_item_id", ["request_item_id"])
        batch.drop_constraint(op.f("ck_documents_source_known"), type_="check")
        batch.create_check_constraint("source_known", "source in ('upload', 'email', 'client')")
        batch.create_check_constraint("scan_known", "scan in ('clean', 'pending', 'infected', 'not_scanned')")
    # staff uploads so far were for the client to see (R-DOC-3's default); saved attachments stay internal
    op.execute("UPDATE documents SET visible_to_client = true WHERE source = 'upload'")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind_known"), type_="check")
        batch.create_check_constraint("kind_known", KINDS_NOW)
    # not a batch: SQLite would rebuild the table and lose its expression index
    op.add_column("accounts", sa.Column("photo_sha256", sa.String(length=64), nullable=True))
    op.execute("ALTER TABLE accounts DROP COLUMN photo_url")


def downgrade():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        _downgrade()


def _downgrade():
    op.add_column("accounts", sa.Column("photo_url", sa.String(length=500), nullable=True))
    op.execute("ALTER TABLE accounts DROP COLUMN photo_sha256")
    op.execute("DELETE FROM notifications WHERE kind IN ('document_new', 'request_reopened')")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_constraint(op.f("ck_notifications_kind_known"), type_="check")
        batch.create_check_constraint("kind_known", KINDS_BEFORE)
    op.execute("DELETE FROM documents WHERE source = 'client'")
    with op.batch_alter_table("documents") as batch:
        batch.drop_constraint(op.f("ck_documents_scan_known"), type_="check")
        batch.drop_constraint(op.f("ck_documents_source_known"), type_="check")
        batch.create_check_constraint("source_known", "source in ('upload', 'email')")
        batch.drop_index("ix_documents_request_item_id")
        batch.drop_index("ix_documents_uploaded_by_email_id")
        batch.drop_constraint("fk_documents_request_item_id_todo_items", type_="foreignkey")
        batch.drop_constraint("fk_documents_uploaded_by_email_id_contact_emails", type_="foreignkey")
        for column in (
            "scanned_at",
            "scan_signature",
            "scan",
            "request_item_id",
            "visible_to_client",
            "uploaded_by_address",
            "uploaded_by_name",
            "uploaded_by_email_id",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("todos") as batch:
        batch.drop_column("item_count")
    op.drop_index("ix_todo_items_todo_id", "todo_items")
    op.drop_table("todo_items")

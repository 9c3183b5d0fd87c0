"""To-dos get the SPEC's shape (state, done_at, done_by, signing, reminders); notifications table

Revision ID: 0007
Revises: 0006
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TS = sa.DateTime(timezone=True)


@contextmanager
def _quiet() -> Iterator[None]:
    """SQLite rebuilds the table by reflection, which cannot read the expression index of the
    accounts table it references (that index is untouched)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        yield


def upgrade():
    with _quiet(), op.batch_alter_table("todos") as batch:
        batch.drop_index("ix_todos_account_id_status")
        batch.drop_constraint("status_known", type_="check")
        batch.alter_column(
            "status", new_column_name="state", existing_type=sa.String(8), existing_nullable=False
        )
        batch.alter_column("completed_at", new_column_name="done_at", existing_type=UTC_TS)
    # a second rebuild: SQLite's batch mode cannot index a column renamed in the same batch
    with _quiet(), op.batch_alter_table("todos") as batch:
        batch.add_column(
            sa.Column("requires_signature", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("reminder_every_days", sa.Integer(), nullable=False, server_default="3"))
        batch.add_column(sa.Column("reminder_max", sa.Integer(), nullable=False, server_default="3"))
        batch.add_column(sa.Column("reminders_sent", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_reminder_at", UTC_TS, nullable=True))
        batch.add_column(sa.Column("done_action", sa.String(16), nullable=True))
        batch.add_column(sa.Column("done_by_address", sa.String(254), nullable=True))
        batch.add_column(sa.Column("done_by_email_id", BigId, nullable=True))
        batch.add_column(sa.Column("done_by_staff_id", BigId, nullable=True))
        batch.create_foreign_key(
            "fk_todos_done_by_email_id_contact_emails",
            "contact_emails",
            ["done_by_email_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_foreign_key(
            "fk_todos_done_by_staff_id_staff_users",
            "staff_users",
            ["done_by_staff_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_check_constraint("state_known", "state in ('open', 'done')")
        batch.create_check_constraint(
            "action_known", "done_action IS NULL OR done_action IN ('signed', 'approved', 'done')"
        )
        batch.create_check_constraint("reminder_every_days_range", "reminder_every_days BETWEEN 0 AND 365")
        batch.create_check_constraint("reminder_max_range", "reminder_max BETWEEN 0 AND 52")
        batch.create_index("ix_todos_account_id_state", ["account_id", "state"])
        batch.create_index("ix_todos_next_reminder_at", ["next_reminder_at"])
    # Open to-dos of before this migration follow the defaults from now on: the first reminder
    # is due three days after they were created.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE todos SET next_reminder_at = created_at + interval '3 days' WHERE state = 'open'")
    else:
        op.execute("UPDATE todos SET next_reminder_at = datetime(created_at, '+3 days') WHERE state = 'open'")

    op.create_table(
        "notifications",
        sa.Column("id", BigId, nullable=False),
        sa.Column("firm_id", BigId, nullable=False),
        sa.Column("event_key", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("email_id", BigId, nullable=False),
        sa.Column("account_id", BigId, nullable=True),
        sa.Column("todo_id", BigId, nullable=True),
        sa.Column("outbox_id", BigId, nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.CheckConstraint(
            "kind in ('todo_new', 'todo_reminder', 'weekly_transactions')",
            name=op.f("ck_notifications_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["firm_id"], ["firms.id"], name=op.f("fk_notifications_firm_id_firms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["email_id"],
            ["contact_emails.id"],
            name=op.f("fk_notifications_email_id_contact_emails"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_notifications_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["todo_id"], ["todos.id"], name=op.f("fk_notifications_todo_id_todos"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox_emails.id"],
            name=op.f("fk_notifications_outbox_id_outbox_emails"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("event_key", "email_id", name=op.f("uq_notifications_event_key_email_id")),
    )
    op.create_index("ix_notifications_email_id", "notifications", ["email_id"])
    op.create_index("ix_notifications_firm_id", "notifications", ["firm_id"])
    op.create_index("ix_notifications_todo_id", "notifications", ["todo_id"])


def downgrade():
    op.drop_table("notifications")
    with _quiet(), op.batch_alter_table("todos") as batch:
        batch.drop_index("ix_todos_next_reminder_at")
        batch.drop_index("ix_todos_account_id_state")
        for name in ("state_known", "action_known", "reminder_every_days_range", "reminder_max_range"):
            batch.drop_constraint(name, type_="check")
        batch.drop_constraint("fk_todos_done_by_staff_id_staff_users", type_="foreignkey")
        batch.drop_constraint("fk_todos_done_by_email_id_contact_emails", type_="foreignkey")
        for column in (
            "done_by_staff_id",
            "done_by_email_id",
            "done_by_address",
            "done_action",
            "next_reminder_at",
            "reminders_sent",
            "reminder_max",
            "reminder_every_days",
            "requires_signature",
        ):
            batch.drop_column(column)
        batch.alter_column("done_at", new_column_name="completed_at", existing_type=UTC_TS)
        batch.alter_column(
            "state", new_column_name="status", existing_type=sa.String(8), existing_nullable=False
        )
        batch.create_check_constraint("status_known", "status in ('open', 'done')")
        batch.create_index("ix_todos_account_id_status", ["account_id", "status"])

"""Two-factor sign-in: factor columns on staff and portal users, recovery and emailed codes, the
firm's "require two factors" settings

Revision ID: 0008
Revises: 0007
"""
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TS = sa.DateTime(timezone=True)
USER_TABLES = ("staff_users", "portal_users")


@contextmanager
def _quiet() -> Iterator[None]:
    """SQLite's batch rebuild reflects referenced tables, and cannot read the accounts table's
    expression index (left untouched)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        yield


def upgrade():
    for table in USER_TABLES:
        with _quiet(), op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("mfa_method", sa.String(8), nullable=True))
            batch.add_column(sa.Column("mfa_enabled_at", UTC_TS, nullable=True))
            batch.add_column(sa.Column("totp_secret", sa.String(255), nullable=True))
            batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
            batch.add_column(sa.Column("mfa_challenge", sa.String(64), nullable=True))
    with _quiet(), op.batch_alter_table("firms") as batch:
        batch.add_column(sa.Column("require_mfa_staff", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("require_mfa_clients", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "recovery_codes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("staff_user_id", BigId, nullable=True),
        sa.Column("portal_user_id", BigId, nullable=True),
        sa.Column("code_digest", sa.String(64), nullable=False),
        sa.Column("used_at", UTC_TS, nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.CheckConstraint(
            "(staff_user_id IS NULL) <> (portal_user_id IS NULL)", name=op.f("ck_recovery_codes_one_owner")
        ),
        sa.ForeignKeyConstraint(
            ["staff_user_id"], ["staff_users.id"], name=op.f("fk_recovery_codes_staff_user_id_staff_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["portal_user_id"], ["portal_users.id"], name=op.f("fk_recovery_codes_portal_user_id_portal_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
    )
    op.create_index("ix_recovery_codes_staff_user_id", "recovery_codes", ["staff_user_id"])
    op.create_index("ix_recovery_codes_portal_user_id", "recovery_codes", ["portal_user_id"])
    op.create_table(
        "email_codes",
        sa.Column("id", BigId, nullable=False),
        sa.Column("portal_user_id", BigId, nullable=False),
        sa.Column("purpose", sa.String(8), nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=True),
        sa.Column("expires_at", UTC_TS, nullable=True),
        sa.Column("used_at", UTC_TS, nullable=True),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.CheckConstraint("purpose in ('login', 'enrol')", name=op.f("ck_email_codes_purpose_known")),
        sa.ForeignKeyConstraint(
            ["portal_user_id"], ["portal_users.id"], name=op.f("fk_email_codes_portal_user_id_portal_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_codes")),
    )
    op.create_index("ix_email_codes_portal_user_id", "email_codes", ["portal_user_id"])
    # emailed codes reach the outbox by id, like invitations
    with _quiet(), op.batch_alter_table("outbox_emails") as batch:
        batch.add_column(sa.Column("email_code_id", BigId, nullable=True))
        batch.create_foreign_key(
            "fk_outbox_emails_email_code_id_email_codes", "email_codes", ["email_code_id"], ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    with _quiet(), op.batch_alter_table("outbox_emails") as batch:
        batch.drop_constraint("fk_outbox_emails_email_code_id_email_codes", type_="foreignkey")
        batch.drop_column("email_code_id")
    op.drop_table("email_codes")
    op.drop_table("recovery_codes")
    with _quiet(), op.batch_alter_table("firms") as batch:
        batch.drop_column("require_mfa_clients")
        batch.drop_column("require_mfa_staff")
    for table in USER_TABLES:
        with _quiet(), op.batch_alter_table(table) as batch:
            for column in ("mfa_challenge", "totp_last_step", "totp_secret", "mfa_enabled_at", "mfa_method"):
                batch.drop_column(column)

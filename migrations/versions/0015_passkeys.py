"""Passkeys (SPEC §18, R-SEC-15): each user's WebAuthn credentials, the single-use challenges they
answer, and a random WebAuthn user handle on both kinds of user

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
ONE_OWNER = "(staff_user_id IS NULL) <> (portal_user_id IS NULL)"
OWNERS = (
    ("staff_user_id", "staff_users"),
    ("portal_user_id", "portal_users"),
)


def _owner_columns(table: str) -> list:
    return [
        sa.Column(
            column,
            ID,
            sa.ForeignKey(f"{target}.id", ondelete="CASCADE", name=f"fk_{table}_{column}_{target}"),
            nullable=True,
        )
        for column, target in OWNERS
    ]


def upgrade():
    op.create_table(
        "passkeys",
        sa.Column("id", ID, primary_key=True),
        *_owner_columns("passkeys"),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=False),
        sa.Column("backup_eligible", sa.Boolean(), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("blocked_at", TS, nullable=True),
        sa.CheckConstraint(ONE_OWNER, name="ck_passkeys_one_owner"),
        sa.PrimaryKeyConstraint("id", name="pk_passkeys"),
    )
    op.create_index("ix_passkeys_staff_user_id", "passkeys", ["staff_user_id"])
    op.create_index("ix_passkeys_portal_user_id", "passkeys", ["portal_user_id"])
    op.create_index("ix_passkeys_credential_id", "passkeys", ["credential_id"], unique=True)
    op.create_table(
        "passkey_challenges",
        sa.Column("id", ID, primary_key=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        *_owner_columns("passkey_challenges"),
        sa.Column("expires_at", TS, nullable=False),
        sa.CheckConstraint(
            "purpose IN ('register', 'login-staff', 'login-client')",
            name="ck_passkey_challenges_purpose_known",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_passkey_challenges"),
    )
    op.create_index("ix_passkey_challenges_digest", "passkey_challenges", ["digest"], unique=True)
    op.create_index("ix_passkey_challenges_expires_at", "passkey_challenges", ["expires_at"])
    for table in ("staff_users", "portal_users"):
        op.add_column(table, sa.Column("passkey_handle", sa.String(length=43), nullable=True))
        op.create_index(f"ix_{table}_passkey_handle", table, ["passkey_handle"], unique=True)


def downgrade():
    for table in ("staff_users", "portal_users"):
        op.drop_index(f"ix_{table}_passkey_handle", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("passkey_handle")
    op.drop_table("passkey_challenges")
    op.drop_table("passkeys")

"""accounts.external_id: the firm's own client number, unique within the firm (imports match on it)

Revision ID: 0006
Revises: 0005
"""
import warnings

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NAME_INDEX = "ix_accounts_firm_id_lower_name_id"


def upgrade():
    column = sa.Column("external_id", sa.String(length=100), nullable=True)
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("accounts", column)
        op.create_unique_constraint("uq_accounts_firm_id_external_id", "accounts", ["firm_id", "external_id"])
        return
    # SQLite adds a constraint by rebuilding the table, which drops the expression index it
    # cannot reflect: rebuild, then put the index back.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        with op.batch_alter_table("accounts") as batch:
            batch.add_column(column)
            batch.create_unique_constraint("uq_accounts_firm_id_external_id", ["firm_id", "external_id"])
    op.execute(f"CREATE INDEX IF NOT EXISTS {NAME_INDEX} ON accounts (firm_id, lower(name), id)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("uq_accounts_firm_id_external_id", "accounts", type_="unique")
        op.drop_column("accounts", "external_id")
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        with op.batch_alter_table("accounts") as batch:
            batch.drop_constraint("uq_accounts_firm_id_external_id", type_="unique")
            batch.drop_column("external_id")
    op.execute(f"CREATE INDEX IF NOT EXISTS {NAME_INDEX} ON accounts (firm_id, lower(name), id)")

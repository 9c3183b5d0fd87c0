"""Acting from an email without logging in (SPEC §17): the firm's login-free actions, and how a
client completed a to-do (the portal or an emailed link), and how often a to-do was reopened
(a link from before a reopen stays dead)

Revision ID: 0014
Revises: 0013
"""

import warnings

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

VIA_KNOWN = "done_via IS NULL OR done_via IN ('portal', 'email_link')"


def upgrade():
    op.add_column(
        "firms",
        sa.Column("login_free_actions", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    with warnings.catch_warnings():
        # SQLite rebuilds todos; reflecting the accounts table it refers to skips its expression
        # index, which stays as it is (accounts is not rebuilt)
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        with op.batch_alter_table("todos") as batch:
            batch.add_column(sa.Column("done_via", sa.String(length=16), nullable=True))
            batch.create_check_constraint("via_known", VIA_KNOWN)
            batch.add_column(sa.Column("times_reopened", sa.Integer(), nullable=False, server_default="0"))
    # every to-do a client completed so far was completed in the portal
    op.execute("UPDATE todos SET done_via = 'portal' WHERE done_by_email_id IS NOT NULL")


def downgrade():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        with op.batch_alter_table("todos") as batch:
            batch.drop_constraint(op.f("ck_todos_via_known"), type_="check")
            batch.drop_column("times_reopened")
            batch.drop_column("done_via")
    with op.batch_alter_table("firms") as batch:
        batch.drop_column("login_free_actions")

"""jobs.dry_run_seen: what a dry run's rolled-back batches created (accounts and contact emails),
so its later batches count them as a real run would, in whichever worker runs them

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("jobs", sa.Column("dry_run_seen", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("dry_run_seen")

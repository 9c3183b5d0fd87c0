"""notifications.outbox_id is indexed: rendering an email finds its notification by it

Revision ID: 0010
Revises: 0009
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_notifications_outbox_id", "notifications", ["outbox_id"])


def downgrade():
    op.drop_index("ix_notifications_outbox_id", "notifications")

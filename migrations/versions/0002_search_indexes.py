"""trigram indexes for the account list's q search (PostgreSQL only)

The list filter `q` matches any part of an account name, a linked contact's name or an
email address (LIKE '%term%'). B-tree indexes cannot serve an infix match; pg_trgm's GIN
indexes can, so a search stays fast for a firm of 100 000 accounts. SQLite (the embedded
default) scans, which is fine at its scale.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {
    "trgm_accounts_lower_name": "accounts USING gin (lower(name) gin_trgm_ops)",
    "trgm_contacts_full_name": (
        "contacts USING gin ("
        "lower((first_name || ' ' || middle_name || ' ' || last_name)) gin_trgm_ops)"
    ),
    "trgm_contacts_short_name": (
        "contacts USING gin (lower((first_name || ' ' || last_name)) gin_trgm_ops)"
    ),
    "trgm_contact_emails_address": "contact_emails USING gin (address gin_trgm_ops)",
}


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, definition in INDEXES.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")

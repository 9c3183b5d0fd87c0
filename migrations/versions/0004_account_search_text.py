"""accounts.search_text: one text per account for the list's q search, with a trigram index

The account list's `q` matched a union of three lookups (account names, contact names, email
addresses), each a trigram index scan that collects every match in the firm before the page is
chosen, so a common term grew with the firm. One lower-cased text per account (its name, linked
contacts' names and emails), kept by the services, lets a common term walk the name order and stop
after one page, and a rare term use one trigram index. The three older trigram indexes have no
reader left and are dropped.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OLD_INDEXES = {
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

# The same text as portal_app/services/search_text.py, for the rows that exist now.
BACKFILL = """
UPDATE accounts SET search_text = lower(accounts.name) || :sep || coalesce((
    SELECT {agg}(lower(c.first_name || ' ' || c.middle_name || ' ' || c.last_name || :sep
                       || c.first_name || ' ' || c.last_name), :sep)
      FROM contacts c JOIN account_contacts ac ON ac.contact_id = c.id
     WHERE ac.account_id = accounts.id), '') || :sep || coalesce((
    SELECT {agg}(e.address, :sep)
      FROM contact_emails e JOIN account_contacts ac ON ac.contact_id = e.contact_id
     WHERE ac.account_id = accounts.id), '')
"""


def upgrade():
    op.add_column("accounts", sa.Column("search_text", sa.Text(), nullable=False, server_default=""))
    postgresql = op.get_bind().dialect.name == "postgresql"
    backfill = BACKFILL.format(agg="string_agg" if postgresql else "group_concat")
    op.execute(sa.text(backfill).bindparams(sep="\n"))
    if postgresql:
        op.execute("CREATE INDEX trgm_accounts_search_text ON accounts USING gin (search_text gin_trgm_ops)")
        for name in OLD_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS trgm_accounts_search_text")
        for name, definition in OLD_INDEXES.items():
            op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("search_text")

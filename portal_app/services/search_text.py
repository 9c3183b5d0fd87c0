"""The account list's search text (R-STA-4): one lower-cased text per account holding its name, its
linked contacts' names and their email addresses, kept up to date by every service that changes one
of them. `q` is then one LIKE over one column with one trigram index (PostgreSQL), instead of a
union over accounts, contacts and emails that grows with the firm.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, func, literal, select, update

from portal_app.extensions import db
from portal_app.models import Account, AccountContact, Contact, ContactEmail

SEPARATOR = "\n"  # between parts: a term never matches across two names, and no one types it


def _joined(expression: ColumnElement[str]) -> ColumnElement[str]:
    """Aggregate text rows with the separator, in PostgreSQL's or SQLite's spelling."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.string_agg(expression, literal(SEPARATOR))
    return func.group_concat(expression, SEPARATOR)


def search_text_expr() -> ColumnElement[str]:
    """The search text of the account row being updated, as one SQL expression."""
    space = literal(" ")
    names = (
        select(
            _joined(
                func.lower(
                    Contact.first_name.op("||")(space)
                    .op("||")(Contact.middle_name)
                    .op("||")(space)
                    .op("||")(Contact.last_name)
                    .op("||")(literal(SEPARATOR))
                    .op("||")(Contact.first_name)
                    .op("||")(space)
                    .op("||")(Contact.last_name)
                )
            )
        )
        .join(AccountContact, AccountContact.contact_id == Contact.id)
        .where(AccountContact.account_id == Account.id)
        .scalar_subquery()
    )
    addresses = (
        select(_joined(ContactEmail.address))
        .join(AccountContact, AccountContact.contact_id == ContactEmail.contact_id)
        .where(AccountContact.account_id == Account.id)
        .scalar_subquery()
    )
    return (
        func.lower(Account.name)
        .op("||")(literal(SEPARATOR))
        .op("||")(func.coalesce(names, ""))
        .op("||")(literal(SEPARATOR))
        .op("||")(func.coalesce(addresses, ""))
    )


def refresh_accounts(account_ids: Iterable[int]) -> None:
    """Recompute the search text of these accounts, one statement per thousand."""
    ids = sorted(set(account_ids))
    for start in range(0, len(ids), 1000):
        db.session.execute(
            update(Account)
            .where(Account.id.in_(ids[start : start + 1000]))
            .values(search_text=search_text_expr())
            .execution_options(synchronize_session=False)
        )


def refresh_for_contact(contact_id: int) -> None:
    """A contact's name or emails changed: every account it is linked to."""
    refresh_accounts(
        db.session.scalars(select(AccountContact.account_id).where(AccountContact.contact_id == contact_id))
    )


def refresh_firm(firm_id: int) -> None:
    """Every account of a firm (migrations, bulk loads)."""
    db.session.execute(
        update(Account)
        .where(Account.firm_id == firm_id)
        .values(search_text=search_text_expr())
        .execution_options(synchronize_session=False)
    )

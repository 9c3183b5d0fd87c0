"""The accounts a portal user may see (R-POR-3, R-LOG-7): those on which their email has login
on, re-read on every request, so switching login off takes effect at the next click."""

from __future__ import annotations

from sqlalchemy import Select, func, select

from portal_app.extensions import db
from portal_app.models import Account, ContactSettings, PortalUser, Todo


def _visible(user: PortalUser) -> Select[tuple[Account]]:
    return (
        select(Account)
        .join(ContactSettings, ContactSettings.account_id == Account.id)
        .where(ContactSettings.lets_in(user.email_id))
        .order_by(Account.name, Account.id)
    )


def accessible_accounts(user: PortalUser) -> list[Account]:
    """Every account this user may see, by name."""
    return list(db.session.scalars(_visible(user)))


def accounts_with_open_counts(user: PortalUser) -> list[tuple[Account, int]]:
    """``accessible_accounts`` with each account's number of open to-dos, in the same query."""
    open_count = (
        select(func.count())
        .where(Todo.account_id == Account.id, Todo.state == "open")
        .correlate(Account)
        .scalar_subquery()
    )
    return [(account, count) for account, count in db.session.execute(_visible(user).add_columns(open_count))]

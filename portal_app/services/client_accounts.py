"""The accounts a portal user may see (R-POR-3, R-LOG-7): those on which their email has login
on, re-read on every request, so switching login off takes effect at the next click."""

from __future__ import annotations

from sqlalchemy import Select, bindparam, func, select

from portal_app.extensions import db
from portal_app.models import Account, ContactSettings, PortalUser, Todo


def _visible() -> Select[tuple[Account]]:
    return (
        select(Account)
        .join(ContactSettings, ContactSettings.account_id == Account.id)
        .where(ContactSettings.lets_in(bindparam("email_id")))
        .order_by(Account.name, Account.id)
    )


# Built once (every portal page runs one of them), with the user's email as a parameter.
_ACCESSIBLE = _visible()
_WITH_COUNTS = _visible().add_columns(
    select(func.count())
    .where(Todo.account_id == Account.id, Todo.state == "open")
    .correlate(Account)
    .scalar_subquery(),
    ContactSettings.signatory,
)


def accessible_accounts(user: PortalUser) -> list[Account]:
    """Every account this user may see, by name."""
    return list(db.session.scalars(_ACCESSIBLE, {"email_id": user.email_id}))


def accounts_with_open_counts(user: PortalUser) -> list[tuple[Account, int, bool]]:
    """``accessible_accounts`` with each account's number of open to-dos, and whether this
    user's email signs for it (R-SIG-1), in the same query."""
    rows = db.session.execute(_WITH_COUNTS, {"email_id": user.email_id})
    return [(account, count, bool(signs)) for account, count, signs in rows]

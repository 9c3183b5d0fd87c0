"""The account list: status, notify and email-sync computed in SQL for a whole page (R-STA-*)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, case, exists, func, literal_column, or_, select, union
from sqlalchemy.orm import aliased

from portal_app.extensions import db
from portal_app.models import (
    Account,
    AccountContact,
    AccountTag,
    Contact,
    ContactEmail,
    ContactSettings,
    PortalUser,
)
from portal_app.services.errors import ValidationFailed

ACCOUNT_STATUSES = ("activated", "pending_activation", "not_activated")
MAX_PAGE_SIZE = 200


AccountIdCol = ColumnElement[int]


def _settings_exist(
    *conditions: ColumnElement[bool], account_id: AccountIdCol = Account.id
) -> ColumnElement[bool]:
    return exists().where(ContactSettings.account_id == account_id, *conditions)


def _activated_exists(account_id: AccountIdCol = Account.id) -> ColumnElement[bool]:
    """Some email with login on belongs to an activated portal user."""
    return exists().where(
        ContactSettings.account_id == account_id,
        ContactSettings.login.is_(True),
        PortalUser.email_id == ContactSettings.email_id,
        PortalUser.activated_at.is_not(None),
        PortalUser.password_hash.is_not(None),
    )


def account_status_expr(account_id: AccountIdCol = Account.id) -> ColumnElement[str]:
    """R-STA-1..3 as one SQL expression over the account row."""
    return case(
        (_activated_exists(account_id), "activated"),
        (_settings_exist(ContactSettings.login.is_(True), account_id=account_id), "pending_activation"),
        else_="not_activated",
    )


def status_filter(status: str) -> ColumnElement[bool]:
    """``account_status_expr() == status`` as plain EXISTS terms the planner turns into
    (anti-)semi-joins, instead of a CASE it can only evaluate row by row."""
    if status == "activated":
        return _activated_exists()
    if status == "pending_activation":
        return and_(_settings_exist(ContactSettings.login.is_(True)), ~_activated_exists())
    return ~_settings_exist(ContactSettings.login.is_(True))


def notify_expr(account_id: AccountIdCol = Account.id) -> ColumnElement[bool]:
    """R-STA-4: true when any linked email of the account has notify on."""
    return _settings_exist(ContactSettings.notify.is_(True), account_id=account_id)


def email_sync_expr(account_id: AccountIdCol = Account.id) -> ColumnElement[bool]:
    return _settings_exist(ContactSettings.email_sync.is_(True), account_id=account_id)


def like_pattern(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


SPACE = literal_column("' '")  # inline, so the expressions match the trigram indexes (0002)


def _full_name() -> ColumnElement[str]:
    return func.lower(
        Contact.first_name.op("||")(SPACE)
        .op("||")(Contact.middle_name)
        .op("||")(SPACE)
        .op("||")(Contact.last_name)
    )


def _short_name() -> ColumnElement[str]:
    return func.lower(Contact.first_name.op("||")(SPACE).op("||")(Contact.last_name))


def _text_filter(firm_id: int, q: str) -> ColumnElement[bool]:
    """Name, or any part of a linked contact's name or email (R-STA-4).

    A union of three id lookups, each answered from a trigram index on PostgreSQL (migration
    0002), instead of an OR of correlated EXISTS that would test every account of the firm.
    """
    pattern = like_pattern(q)
    by_name = select(Account.id).where(
        Account.firm_id == firm_id, func.lower(Account.name).like(pattern, escape="\\")
    )
    by_contact = (
        select(AccountContact.account_id)
        .join(Contact, Contact.id == AccountContact.contact_id)
        .where(
            Contact.firm_id == firm_id,
            or_(_full_name().like(pattern, escape="\\"), _short_name().like(pattern, escape="\\")),
        )
    )
    by_email = (
        select(AccountContact.account_id)
        .join(ContactEmail, ContactEmail.contact_id == AccountContact.contact_id)
        .where(ContactEmail.firm_id == firm_id, ContactEmail.address.like(pattern, escape="\\"))
    )
    return Account.id.in_(union(by_name, by_contact, by_email))


@dataclass
class AccountRow:
    account: Account
    status: str
    notify: bool
    email_sync: bool
    tags: list[str] = field(default_factory=list)


@dataclass
class AccountPage:
    rows: list[AccountRow]
    next_cursor: str | None


def encode_cursor(sort_key: str, account_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([sort_key, account_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key, account_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, str) or not isinstance(account_id, int):
            raise ValueError
        return key, account_id
    except (ValueError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationFailed(
            "The cursor is not valid.", fields={"cursor": ["Not a valid cursor."]}
        ) from None


def list_accounts(
    firm_id: int,
    *,
    q: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    type: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AccountPage:
    """One page of accounts sorted by name, in two queries whatever the page size."""
    if status is not None and status not in ACCOUNT_STATUSES:
        raise ValidationFailed(
            "Unknown status.", fields={"status": [f"One of {', '.join(ACCOUNT_STATUSES)}."]}
        )
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    sort_key = func.lower(Account.name)
    # First the page, walking the (firm_id, lower(name), id) index; only then the flags over
    # it, so they are computed for 51 rows rather than (by a hashed plan) for every account.
    page = select(Account, sort_key.label("sort_key")).where(Account.firm_id == firm_id)
    if q and q.strip():
        page = page.where(_text_filter(firm_id, q.strip()))
    if status:
        page = page.where(status_filter(status))
    if tag:
        page = page.where(
            exists().where(
                AccountTag.account_id == Account.id, func.lower(AccountTag.tag) == tag.strip().lower()
            )
        )
    if type:
        page = page.where(Account.type == type)
    if cursor:
        after_key, after_id = decode_cursor(cursor)
        page = page.where(or_(sort_key > after_key, and_(sort_key == after_key, Account.id > after_id)))
    subquery = page.order_by(sort_key, Account.id).limit(limit + 1).subquery("page")
    account = aliased(Account, subquery)
    query = select(
        account,
        account_status_expr(account.id).label("status"),
        notify_expr(account.id).label("notify"),
        email_sync_expr(account.id).label("email_sync"),
        subquery.c.sort_key,
    ).order_by(subquery.c.sort_key, account.id)
    results = db.session.execute(query).all()
    has_more = len(results) > limit
    results = results[:limit]
    rows = [AccountRow(r[0], r[1], bool(r[2]), bool(r[3])) for r in results]
    if rows:
        tags = db.session.execute(
            select(AccountTag.account_id, AccountTag.tag)
            .where(AccountTag.account_id.in_([r.account.id for r in rows]))
            .order_by(AccountTag.tag)
        ).all()
        by_account: dict[int, list[str]] = {}
        for account_id, tag_name in tags:
            by_account.setdefault(account_id, []).append(tag_name)
        for row in rows:
            row.tags = by_account.get(row.account.id, [])
    next_cursor = encode_cursor(results[-1][4], results[-1][0].id) if has_more else None
    return AccountPage(rows=rows, next_cursor=next_cursor)


def account_flags(account_id: int) -> tuple[str, bool, bool]:
    """Status, notify and email-sync for one account."""
    row = db.session.execute(
        select(account_status_expr(), notify_expr(), email_sync_expr()).where(Account.id == account_id)
    ).one()
    return row[0], bool(row[1]), bool(row[2])

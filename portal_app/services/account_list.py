"""The account list: status, notify and email-sync computed in SQL for a whole page (R-STA-*)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select

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


def _settings_exist(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(ContactSettings.account_id == Account.id, *conditions)


def account_status_expr() -> ColumnElement[str]:
    """R-STA-1..3 as one SQL expression over the account row."""
    activated = exists().where(
        ContactSettings.account_id == Account.id,
        ContactSettings.login.is_(True),
        PortalUser.email_id == ContactSettings.email_id,
        PortalUser.activated_at.is_not(None),
        PortalUser.password_hash.is_not(None),
    )
    return case(
        (activated, "activated"),
        (_settings_exist(ContactSettings.login.is_(True)), "pending_activation"),
        else_="not_activated",
    )


def notify_expr() -> ColumnElement[bool]:
    """R-STA-4: true when any linked email of the account has notify on."""
    return _settings_exist(ContactSettings.notify.is_(True))


def email_sync_expr() -> ColumnElement[bool]:
    return _settings_exist(ContactSettings.email_sync.is_(True))


def like_pattern(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_filter(q: str) -> ColumnElement[bool]:
    """Name, or any part of a linked contact's name or email (R-STA-4)."""
    pattern = like_pattern(q)
    full_name = func.lower(Contact.first_name + " " + Contact.middle_name + " " + Contact.last_name)
    short_name = func.lower(Contact.first_name + " " + Contact.last_name)
    contact_match = exists().where(
        AccountContact.account_id == Account.id,
        Contact.id == AccountContact.contact_id,
        or_(
            full_name.like(pattern, escape="\\"),
            short_name.like(pattern, escape="\\"),
            exists().where(
                ContactEmail.contact_id == Contact.id, ContactEmail.address.like(pattern, escape="\\")
            ),
        ),
    )
    return or_(func.lower(Account.name).like(pattern, escape="\\"), contact_match)


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
    status_col = account_status_expr().label("status")
    sort_key = func.lower(Account.name)
    query = select(
        Account, status_col, notify_expr().label("notify"), email_sync_expr().label("email_sync"), sort_key
    ).where(Account.firm_id == firm_id)
    if q and q.strip():
        query = query.where(_text_filter(q.strip()))
    if status:
        query = query.where(account_status_expr() == status)
    if tag:
        query = query.where(
            exists().where(
                AccountTag.account_id == Account.id, func.lower(AccountTag.tag) == tag.strip().lower()
            )
        )
    if type:
        query = query.where(Account.type == type)
    if cursor:
        after_key, after_id = decode_cursor(cursor)
        query = query.where(or_(sort_key > after_key, and_(sort_key == after_key, Account.id > after_id)))
    results = db.session.execute(query.order_by(sort_key, Account.id).limit(limit + 1)).all()
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

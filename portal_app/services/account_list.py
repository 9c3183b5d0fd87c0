"""The account list: status, notify and email-sync computed in SQL for a whole page (R-STA-*)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, exists, func, or_, select

from portal_app.extensions import db
from portal_app.models import (
    Account,
    AccountTag,
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
        PortalUser.is_activated,
    )


STATUS_BY_LEVEL = {2: "activated", 1: "pending_activation"}


def _status_level(account_id: AccountIdCol) -> ColumnElement[int]:
    """R-STA-1..3 as a number: 2 activated, 1 pending activation, 0 or NULL not activated.

    A scalar subquery (one index lookup per row of the page), never a hashed EXISTS: the planner
    may hash an EXISTS over every settings row of the firm, which grows with the firm."""
    activated = (
        select(func.count())
        .where(
            PortalUser.email_id == ContactSettings.email_id,
            PortalUser.is_activated,
        )
        .correlate(ContactSettings)
        .scalar_subquery()
    )  # 0 or 1: one portal user per email, found through its unique index
    level = case((ContactSettings.login.is_(True), 1 + activated), else_=0)
    return select(func.max(level)).where(ContactSettings.account_id == account_id).scalar_subquery()


def _any_on(flag: ColumnElement[bool], account_id: AccountIdCol) -> ColumnElement[int]:
    """R-STA-4: 1 when the flag is on for any linked email of the account (per-row lookup)."""
    return (
        select(func.max(case((flag.is_(True), 1), else_=0)))
        .where(ContactSettings.account_id == account_id)
        .scalar_subquery()
    )


def flag_columns(account_id: AccountIdCol = Account.id) -> tuple[ColumnElement[int], ...]:
    """Status level, notify and email sync of an account row, for ``read_flags``."""
    return (
        _status_level(account_id),
        _any_on(ContactSettings.notify, account_id),
        _any_on(ContactSettings.email_sync, account_id),
    )


def read_flags(level: int | None, notify: int | None, email_sync: int | None) -> tuple[str, bool, bool]:
    return STATUS_BY_LEVEL.get(level or 0, "not_activated"), bool(notify), bool(email_sync)


def status_filter(status: str) -> ColumnElement[bool]:
    """``account_status_expr() == status`` as plain EXISTS terms the planner turns into
    (anti-)semi-joins, instead of a CASE it can only evaluate row by row."""
    if status == "activated":
        return _activated_exists()
    if status == "pending_activation":
        return and_(_settings_exist(ContactSettings.login.is_(True)), ~_activated_exists())
    return ~_settings_exist(ContactSettings.login.is_(True))


def like_pattern(term: str) -> str:
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass
class AccountRow:
    id: int
    name: str
    type: str
    company_name: str | None
    company_address: str | None
    custom_fields: dict
    created_at: datetime
    status: str
    notify: bool
    email_sync: bool
    photo_sha256: str | None = None
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


def _tag_list(account_id: AccountIdCol) -> ColumnElement[Any]:
    """The account's tags as one JSON array (sorted in Python: SQLite cannot order inside)."""
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    aggregate = func.json_agg(AccountTag.tag) if postgresql else func.json_group_array(AccountTag.tag)
    return select(aggregate).where(AccountTag.account_id == account_id).scalar_subquery()


# One statement per shape of filters, built once with bound parameters: building the SQL
# expression for every request cost more than running it.
_PAGE_STATEMENTS: dict[tuple[Any, ...], Select[Any]] = {}


def _filtered(query: Select[Any], *, search: bool, status: str | None, tag: bool, type: bool) -> Select[Any]:
    """The list's filters (R-STA-4) on a query over accounts, with bound parameters."""
    query = query.where(Account.firm_id == bindparam("firm_id"))
    if search:
        query = query.where(Account.search_text.like(bindparam("pattern"), escape="\\"))
    if status:
        query = query.where(status_filter(status))
    if tag:
        query = query.where(
            exists().where(
                AccountTag.account_id == Account.id, func.lower(AccountTag.tag) == bindparam("tag")
            )
        )
    if type:
        query = query.where(Account.type == bindparam("type"))
    return query


def _filter_params(firm_id: int, q: str | None, tag: str | None, type: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"firm_id": firm_id}
    term = " ".join((q or "").split())  # runs of white space (a newline too) are one space
    if term:
        params["pattern"] = like_pattern(term)
    if tag and tag.strip():
        params["tag"] = tag.strip().lower()
    if type:
        params["type"] = type
    return params


def _check_status(status: str | None) -> None:
    if status is not None and status not in ACCOUNT_STATUSES:
        raise ValidationFailed(
            "Unknown status.", fields={"status": [f"One of {', '.join(ACCOUNT_STATUSES)}."]}
        )


def matching_account_ids(
    firm_id: int,
    *,
    q: str | None = None,
    status: str | None = None,
    tag: str | None = None,
    type: str | None = None,
    limit: int | None = None,
) -> list[int]:
    """Every account the list would show for these filters, in its order (for bulk updates);
    ``limit`` to ask only whether there are any."""
    _check_status(status)
    params = _filter_params(firm_id, q, tag, type)
    query = _filtered(
        select(Account.id),
        search="pattern" in params,
        status=status,
        tag="tag" in params,
        type="type" in params,
    ).order_by(func.lower(Account.name), Account.id)
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query, params))


def _page_statement(*, search: bool, status: str | None, tag: bool, type: bool, after: bool) -> Select[Any]:
    dialect = db.session.get_bind().dialect.name
    key = (dialect, search, status, tag, type, after)
    statement = _PAGE_STATEMENTS.get(key)
    if statement is not None:
        return statement
    sort_key = func.lower(Account.name)
    # First the page, walking the (firm_id, lower(name), id) index; only then the flags and tags
    # over it, one index lookup per row of the page.
    page = select(
        Account.id,
        Account.name,
        Account.type,
        Account.company_name,
        Account.company_address,
        Account.custom_fields,
        Account.created_at,
        sort_key.label("sort_key"),
        Account.photo_sha256,
    )
    page = _filtered(page, search=search, status=status, tag=tag, type=type)
    if after:
        after_key, after_id = bindparam("after_key"), bindparam("after_id")
        page = page.where(or_(sort_key > after_key, and_(sort_key == after_key, Account.id > after_id)))
    rows = page.order_by(sort_key, Account.id).limit(bindparam("limit")).subquery("page")
    statement = select(rows, *flag_columns(rows.c.id), _tag_list(rows.c.id)).order_by(
        rows.c.sort_key, rows.c.id
    )
    _PAGE_STATEMENTS[key] = statement
    return statement


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
    """One page of accounts sorted by name, with status, flags and tags, in one query."""
    _check_status(status)
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    params = {**_filter_params(firm_id, q, tag, type), "limit": limit + 1}
    if cursor:
        params["after_key"], params["after_id"] = decode_cursor(cursor)
    statement = _page_statement(
        search="pattern" in params,
        status=status,
        tag="tag" in params,
        type="type" in params,
        after=bool(cursor),
    )
    # A Core statement of plain columns: run on the session's connection (replica or primary, as
    # the session picks), without the ORM's result machinery around it.
    results = db.session.connection().execute(statement, params).all()
    has_more = len(results) > limit
    rows = [
        AccountRow(
            id=r[0],
            name=r[1],
            type=r[2],
            company_name=r[3],
            company_address=r[4],
            custom_fields=r[5] or {},
            created_at=r[6],
            photo_sha256=r[8],
            status=read_flags(r[9], r[10], r[11])[0],
            notify=bool(r[10]),
            email_sync=bool(r[11]),
            tags=sorted(_json_list(r[12])),
        )
        for r in results[:limit]
    ]
    last = results[limit - 1] if has_more else None
    return AccountPage(rows=rows, next_cursor=encode_cursor(last[7], last[0]) if last else None)


def _json_list(value: Any) -> list[str]:
    if value is None:
        return []
    items = json.loads(value) if isinstance(value, str) else value
    return [item for item in items if item is not None]


def account_flags(account_id: int) -> tuple[str, bool, bool]:
    """Status, notify and email-sync for one account."""
    row = db.session.execute(select(*flag_columns()).where(Account.id == account_id)).one()
    return read_flags(*row)

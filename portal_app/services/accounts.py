"""Client accounts: create, edit, delete, tags (R-ACC-1).

Creating is batch-shaped: ``account_values`` checks one account, ``insert_accounts`` writes any
number of them in a few statements. The API's single create and the CSV import both take that
path, so one row and 10 000 follow the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete

from portal_app.extensions import db
from portal_app.models import ACCOUNT_TYPES, Account, AccountTag
from portal_app.services import search_text
from portal_app.services.errors import ValidationFailed
from portal_app.services.lookup import firm_row
from portal_app.sql import insert_rows, insert_with_ids

EDITABLE_FIELDS = ("name", "type", "company_name", "company_address", "custom_fields", "tags")


def get_account(firm_id: int, account_id: int | str) -> Account:
    """Return the firm's account, or NotFound for ids of other firms or none at all."""
    return firm_row(Account, firm_id, account_id, "Account")


def _clean_tags(tags: list[str]) -> list[str]:
    cleaned: list[str] = []
    for tag in tags:
        value = tag.strip()
        if not value or len(value) > 64:
            raise ValidationFailed(
                "Tags are 1 to 64 characters.", fields={"tags": ["1 to 64 characters each."]}
            )
        if value.casefold() not in {t.casefold() for t in cleaned}:
            cleaned.append(value)
    return cleaned


def _check_company_fields(values: Account | dict[str, Any]) -> None:
    """R-ACC-1: company name and address exist only on company accounts."""
    get = values.get if isinstance(values, dict) else lambda key: getattr(values, key)
    if get("type") not in ACCOUNT_TYPES:
        raise ValidationFailed("Unknown account type.", fields={"type": ["individual or company."]})
    company = [key for key in ("company_name", "company_address") if get(key)]
    if get("type") != "company" and company:
        raise ValidationFailed(
            "Company name and address are only for company accounts.",
            fields={key: ["Only for company accounts."] for key in company},
        )


def account_values(firm_id: int, fields: dict[str, Any]) -> dict[str, Any]:
    """One new account's row, checked (name, type, company fields, tags); not yet written."""
    name = (fields.get("name") or "").strip()
    if not name:
        raise ValidationFailed("An account needs a name.", fields={"name": ["Required."]})
    values = {
        "firm_id": firm_id,
        "name": name,
        "external_id": fields.get("external_id") or None,
        "type": fields.get("type") or "individual",
        "company_name": fields.get("company_name") or None,
        "company_address": fields.get("company_address") or None,
        "custom_fields": dict(fields.get("custom_fields") or {}),
        "search_text": "",
    }
    _check_company_fields(values)
    return {**values, "tags": _clean_tags(fields.get("tags") or [])}


def insert_accounts(values: Sequence[dict[str, Any]]) -> list[int]:
    """Write checked accounts (``account_values``) with their tags and search text; their ids."""
    rows = [{key: value for key, value in row.items() if key != "tags"} for row in values]
    ids = insert_with_ids(Account.__table__, rows)
    insert_rows(
        AccountTag.__table__,
        [
            {"account_id": account_id, "firm_id": row["firm_id"], "tag": tag}
            for account_id, row in zip(ids, values, strict=True)
            for tag in row["tags"]
        ],
    )
    search_text.refresh_accounts(ids)
    return ids


def create_account(firm_id: int, **fields: Any) -> Account:
    [account_id] = insert_accounts([account_values(firm_id, fields)])
    return db.session.get_one(Account, account_id)


def update_account(account: Account, **changes: Any) -> Account:
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: ["Unknown field."] for k in sorted(unknown)})
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name:
            raise ValidationFailed("An account needs a name.", fields={"name": ["Required."]})
        account.name = name
    if "type" in changes:
        account.type = changes["type"]
        if account.type == "individual" and not {"company_name", "company_address"} & set(changes):
            # Switching to an individual drops the company fields rather than refusing.
            account.company_name = account.company_address = None
    for key in ("company_name", "company_address"):
        if key in changes:
            setattr(account, key, changes[key] or None)
    if "custom_fields" in changes:
        account.custom_fields = dict(changes["custom_fields"] or {})
    _check_company_fields(account)
    if "tags" in changes:
        _replace_tags(account, _clean_tags(changes["tags"] or []))
    db.session.flush()
    if "name" in changes:
        search_text.refresh_accounts([account.id])
    return account


def _replace_tags(account: Account, tags: list[str]) -> None:
    db.session.execute(delete(AccountTag).where(AccountTag.account_id == account.id))
    for tag in tags:
        db.session.add(AccountTag(account_id=account.id, firm_id=account.firm_id, tag=tag))
    db.session.flush()
    db.session.expire(account, ["tags"])


def delete_account(account: Account) -> None:
    """Delete the account; the database removes its links, settings, to-dos and tags."""
    db.session.execute(delete(Account).where(Account.id == account.id))
    db.session.expunge(account)

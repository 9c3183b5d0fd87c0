"""Client accounts: create, edit, delete, tags (R-ACC-1)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from portal_app.extensions import db
from portal_app.models import ACCOUNT_TYPES, Account, AccountTag
from portal_app.services import search_text
from portal_app.services.errors import NotFound, ValidationFailed
from portal_app.services.validation import parse_id

EDITABLE_FIELDS = ("name", "type", "company_name", "company_address", "photo_url", "custom_fields", "tags")


def get_account(firm_id: int, account_id: int | str) -> Account:
    """Return the firm's account, or NotFound for ids of other firms or none at all."""
    key = parse_id(account_id)
    if key is None:
        raise NotFound("Account not found.")
    account = db.session.scalar(select(Account).where(Account.id == key, Account.firm_id == firm_id))
    if account is None:
        raise NotFound("Account not found.")
    return account


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


def _check_company_fields(account: Account) -> None:
    """R-ACC-1: company name and address exist only on company accounts."""
    if account.type not in ACCOUNT_TYPES:
        raise ValidationFailed("Unknown account type.", fields={"type": ["individual or company."]})
    if account.type != "company" and (account.company_name or account.company_address):
        raise ValidationFailed(
            "Company name and address are only for company accounts.",
            fields={
                key: ["Only for company accounts."]
                for key in ("company_name", "company_address")
                if getattr(account, key)
            },
        )


def create_account(firm_id: int, **fields: Any) -> Account:
    name = (fields.get("name") or "").strip()
    if not name:
        raise ValidationFailed("An account needs a name.", fields={"name": ["Required."]})
    account = Account(
        firm_id=firm_id,
        name=name,
        type=fields.get("type") or "individual",
        company_name=fields.get("company_name") or None,
        company_address=fields.get("company_address") or None,
        photo_url=fields.get("photo_url") or None,
        custom_fields=dict(fields.get("custom_fields") or {}),
    )
    _check_company_fields(account)
    db.session.add(account)
    db.session.flush()
    _replace_tags(account, _clean_tags(fields.get("tags") or []))
    search_text.refresh_accounts([account.id])
    return account


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
    for key in ("company_name", "company_address", "photo_url"):
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

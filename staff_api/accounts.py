"""Accounts: the list with status flags, create (with contacts), details, edit, delete."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.models import Account
from portal_app.services import accounts, contacts, links
from portal_app.services.account_list import account_flags, list_accounts
from portal_app.services.errors import Forbidden, ValidationFailed
from portal_app.services.photos import photo_url
from staff_api.auth import current_staff, staff_read
from staff_api.schemas import (
    AccountCreateSchema,
    AccountListArgsSchema,
    AccountPageSchema,
    AccountPatchSchema,
    AccountSchema,
    ErrorSchema,
)

blp = Blueprint("accounts", __name__, description="Client accounts and their status.")


def account_payload(account: Account) -> dict[str, Any]:
    status, notify, email_sync = account_flags(account.id)
    tags = account.tag_names
    return {
        "id": str(account.id),
        "name": account.name,
        "type": account.type,
        "company_name": account.company_name,
        "company_address": account.company_address,
        "tags": tags,
        "custom_fields": account.custom_fields or {},
        "status": status,
        "notify": notify,
        "email_sync": email_sync,
        "photo_url": photo_url(account.id, account.photo_sha256),
        "created_at": account.created_at,
    }


def link_new_contacts(account: Account, specs: list[dict[str, Any]]) -> None:
    """Link existing contacts (by id) or create and link new ones, in order."""
    firm_id = account.firm_id
    for index, spec in enumerate(specs):
        description = spec.get("description", "")
        priority = spec.get("signer_priority")
        if "contact_id" in spec:
            extra = set(spec) - {"contact_id", "description", "signer_priority"}
            if extra:
                raise ValidationFailed(
                    "Give either contact_id or a new contact's fields, not both.",
                    fields={f"contacts.{index}.{k}": ["Not allowed with contact_id."] for k in sorted(extra)},
                )
            person = contacts.get_contact(firm_id, spec["contact_id"])
        else:
            if not spec.get("emails"):
                raise ValidationFailed(
                    "A new contact needs at least one email.",
                    fields={f"contacts.{index}.emails": ["Required."]},
                )
            names = {k: spec.get(k, "") for k in ("first_name", "middle_name", "last_name")}
            person = contacts.create_contact(firm_id, emails=spec["emails"], **names)
        links.link_contact(account, person, description=description, signer_priority=priority)


@blp.route("")
class Accounts(MethodView):
    @blp.arguments(AccountListArgsSchema, location="query")
    @blp.response(200, AccountPageSchema)
    @blp.alt_response(401, schema=ErrorSchema)
    def get(self, args: dict[str, Any]) -> Response:
        """List accounts sorted by name, with status, notify and email-sync flags (R-STA-*)."""
        firm_id = current_staff().firm_id
        page = staff_read(lambda: list_accounts(firm_id, **args))
        # The list is the busiest call of the SPA: its rows are already plain values, so they go
        # out as JSON without a schema dump (the schema still documents it, and the fuzz test
        # checks every answer against that document).
        items = [
            {
                "id": str(r.id),
                "name": r.name,
                "type": r.type,
                "company_name": r.company_name,
                "company_address": r.company_address,
                "tags": r.tags,
                "custom_fields": r.custom_fields,
                "status": r.status,
                "notify": r.notify,
                "email_sync": r.email_sync,
                "photo_url": photo_url(r.id, r.photo_sha256),
                "created_at": r.created_at.isoformat(),
            }
            for r in page.rows
        ]
        return jsonify({"items": items, "next_cursor": page.next_cursor})

    @blp.arguments(AccountCreateSchema)
    @blp.response(201, AccountSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="A contact_id of no contact of this firm.")
    @blp.alt_response(409, schema=ErrorSchema, description="A new contact's email is taken.")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create an account, optionally linking existing contacts or creating new ones."""
        specs = data.pop("contacts", [])
        account = accounts.create_account(current_staff().firm_id, **data)
        link_new_contacts(account, specs)
        return account_payload(account)


@blp.route("/<account_id>")
class AccountDetail(MethodView):
    @blp.response(200, AccountSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, account_id: str) -> dict[str, Any]:
        """One account's details."""
        return account_payload(accounts.get_account(current_staff().firm_id, account_id))

    @blp.arguments(AccountPatchSchema)
    @blp.response(200, AccountSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def patch(self, changes: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Edit an account's details (company fields only on company accounts, R-ACC-1)."""
        account = accounts.get_account(current_staff().firm_id, account_id)
        accounts.update_account(account, **changes)
        return account_payload(account)

    @blp.response(204)
    @blp.alt_response(403, schema=ErrorSchema, description="Only admins delete accounts.")
    @blp.alt_response(404, schema=ErrorSchema)
    def delete(self, account_id: str) -> None:
        """Delete an account with its links, settings and to-dos (admins only)."""
        staff = current_staff()
        account = accounts.get_account(staff.firm_id, account_id)
        if not staff.is_admin:
            raise Forbidden("Only admins can delete accounts.")
        accounts.delete_account(account)

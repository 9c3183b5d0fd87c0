"""The audit trail of contact-setting changes (R-SEC-7)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.models import AuditEntry
from portal_app.services.audit import list_audit
from portal_app.services.errors import ValidationFailed
from portal_app.services.validation import parse_id
from staff_api.auth import current_staff
from staff_api.paging import id_page
from staff_api.schemas import AuditArgsSchema, AuditPageSchema

blp = Blueprint("audit", __name__, description="Who changed which setting, when, old → new.")


def _id(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    key = parse_id(value)
    if key is None:
        raise ValidationFailed("Not a valid id.", fields={field: ["Not a valid id."]})
    return key


@blp.route("")
class Audit(MethodView):
    @blp.arguments(AuditArgsSchema, location="query")
    @blp.response(200, AuditPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Newest first, filterable by account and email; page with `cursor`."""
        firm_id = current_staff().firm_id
        account_id = _id(args.get("account_id"), "account_id")
        email_id = _id(args.get("email_id"), "email_id")
        return id_page(
            args,
            lambda limit, before: list_audit(
                firm_id, account_id=account_id, email_id=email_id, limit=limit, before_id=before
            ),
            _entry_payload,
        )


def _entry_payload(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": str(e.id),
        "account_id": str(e.account_id) if e.account_id else None,
        "contact_id": str(e.contact_id) if e.contact_id else None,
        "email_id": str(e.email_id) if e.email_id else None,
        "address": e.address,
        "actor": {
            "type": e.actor_type,
            "id": str(e.actor_id) if e.actor_id else None,
            "label": e.actor_label,
        },
        "field": e.field,
        "old_value": e.old_value,
        "new_value": e.new_value,
        "created_at": e.created_at,
    }

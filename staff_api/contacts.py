"""Contacts and their emails (R-CON-1)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from portal_app.models import Contact
from portal_app.services import contacts
from staff_api.auth import current_staff
from staff_api.schemas import (
    ContactCreateSchema,
    ContactListArgsSchema,
    ContactPageSchema,
    ContactPatchSchema,
    ContactSchema,
    EmailInputSchema,
    EmailPatchSchema,
    EmailSchema,
    ErrorSchema,
)

blp = Blueprint("contacts", __name__, description="Contacts (people) and their email addresses.")


def email_payload(email: Any) -> dict[str, Any]:
    return {
        "id": str(email.id),
        "address": email.address,
        "label": email.label,
        "is_primary": email.is_primary,
    }


def contact_payload(contact: Contact) -> dict[str, Any]:
    return {
        "id": str(contact.id),
        "first_name": contact.first_name,
        "middle_name": contact.middle_name,
        "last_name": contact.last_name,
        "display_name": contact.display_name,
        "phones": contact.phones or [],
        "addresses": contact.addresses or [],
        "custom_fields": contact.custom_fields or {},
        "emails": [email_payload(e) for e in contact.emails],
    }


@blp.route("")
class Contacts(MethodView):
    @blp.arguments(ContactListArgsSchema, location="query")
    @blp.response(200, ContactPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List contacts by last name, filtered by part of a name or email."""
        items, next_cursor = contacts.list_contacts(current_staff().firm_id, **args)
        return {"items": [contact_payload(c) for c in items], "next_cursor": next_cursor}

    @blp.arguments(ContactCreateSchema)
    @blp.response(201, ContactSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="An email belongs to another contact of the firm.")
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a contact with one or more emails."""
        contact = contacts.create_contact(current_staff().firm_id, **data)
        return contact_payload(contact)


@blp.route("/<contact_id>")
class ContactDetail(MethodView):
    @blp.response(200, ContactSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def get(self, contact_id: str) -> dict[str, Any]:
        """One contact with its emails."""
        return contact_payload(contacts.get_contact(current_staff().firm_id, contact_id))

    @blp.arguments(ContactPatchSchema)
    @blp.response(200, ContactSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    def patch(self, changes: dict[str, Any], contact_id: str) -> dict[str, Any]:
        """Edit names, phones, addresses or custom fields."""
        contact = contacts.get_contact(current_staff().firm_id, contact_id)
        contacts.update_contact(contact, **changes)
        return contact_payload(contact)

    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="The last contact of an account (R-LNK-2).")
    def delete(self, contact_id: str) -> None:
        """Delete a contact, its emails, links and settings."""
        contacts.delete_contact(contacts.get_contact(current_staff().firm_id, contact_id))


@blp.route("/<contact_id>/emails")
class ContactEmails(MethodView):
    @blp.arguments(EmailInputSchema)
    @blp.response(201, EmailSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="The address belongs to a contact of the firm.")
    def post(self, data: dict[str, Any], contact_id: str) -> dict[str, Any]:
        """Add an email; it gets settings on every account the contact is linked to."""
        contact = contacts.get_contact(current_staff().firm_id, contact_id)
        email = contacts.add_email(contact, **data)
        return email_payload(email)


@blp.route("/<contact_id>/emails/<email_id>")
class ContactEmailDetail(MethodView):
    @blp.arguments(EmailPatchSchema)
    @blp.response(200, EmailSchema)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema)
    def patch(self, data: dict[str, Any], contact_id: str, email_id: str) -> dict[str, Any]:
        """Change an email's address, label, or make it primary."""
        contact = contacts.get_contact(current_staff().firm_id, contact_id)
        email = contacts.update_email(contacts.get_email(contact, email_id), **data)
        return email_payload(email)

    @blp.response(204)
    @blp.alt_response(404, schema=ErrorSchema)
    @blp.alt_response(409, schema=ErrorSchema, description="A contact keeps at least one email.")
    def delete(self, contact_id: str, email_id: str) -> None:
        """Remove an email and its settings on every account."""
        contact = contacts.get_contact(current_staff().firm_id, contact_id)
        contacts.remove_email(contacts.get_email(contact, email_id))

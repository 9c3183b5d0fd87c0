"""Contacts and their emails (R-CON-1).

Creating is batch-shaped, as for accounts: ``contact_values`` checks one contact with its
emails, ``insert_contacts`` writes any number; the API's create and the CSV import share them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from portal_app.extensions import db
from portal_app.models import AccountContact, Contact, ContactEmail, ContactSettings
from portal_app.services import search_text
from portal_app.services.errors import Conflict, NotFound, ValidationFailed
from portal_app.services.lookup import firm_row
from portal_app.services.validation import normalise_email, parse_id
from portal_app.sql import insert_with_ids

CONTACT_FIELDS = ("first_name", "middle_name", "last_name", "phones", "addresses", "custom_fields")


def get_contact(firm_id: int, contact_id: int | str) -> Contact:
    return firm_row(Contact, firm_id, contact_id, "Contact")


def get_email(contact: Contact, email_id: int | str) -> ContactEmail:
    key = parse_id(email_id)
    if key is None:
        raise NotFound("Email not found.")
    email = db.session.scalar(
        select(ContactEmail).where(ContactEmail.id == key, ContactEmail.contact_id == contact.id)
    )
    if email is None:
        raise NotFound("Email not found.")
    return email


def _ensure_address_free(firm_id: int, address: str, *, except_id: int | None = None) -> None:
    query = select(ContactEmail.id).where(ContactEmail.firm_id == firm_id, ContactEmail.address == address)
    if except_id is not None:
        query = query.where(ContactEmail.id != except_id)
    if db.session.scalar(query) is not None:
        raise Conflict(
            f"{address} already belongs to a contact of this firm.", fields={"address": ["Already in use."]}
        )


def contact_values(firm_id: int, fields: dict[str, Any], emails: list[dict[str, Any]]) -> dict[str, Any]:
    """One new contact's row and its emails (``"emails"``), checked; not yet written. The first
    email is primary unless one says so."""
    if not emails:
        raise ValidationFailed("A contact needs at least one email.", fields={"emails": ["At least one."]})
    empty: dict[str, Any] = {"phones": [], "addresses": [], "custom_fields": {}}
    values = {key: fields.get(key) or empty.get(key, "") for key in CONTACT_FIELDS}
    for key in ("first_name", "middle_name", "last_name"):
        values[key] = values[key].strip()
    if not (values["first_name"] or values["last_name"]):
        raise ValidationFailed(
            "A contact needs a first or last name.", fields={"first_name": ["First or last name required."]}
        )
    has_primary = any(e.get("is_primary") for e in emails)
    checked: list[dict[str, Any]] = []
    for index, spec in enumerate(emails):
        address = normalise_email(spec.get("address", ""), field=f"emails.{index}.address")
        if address in {e["address"] for e in checked}:
            raise ValidationFailed(
                "The same email is listed twice.", fields={f"emails.{index}.address": ["Duplicate."]}
            )
        primary = bool(spec.get("is_primary")) if has_primary else index == 0
        label = (spec.get("label") or "").strip()
        checked.append({"address": address, "label": label, "is_primary": primary})
    return {"firm_id": firm_id, **values, "emails": checked}


def insert_contacts(values: list[dict[str, Any]]) -> list[tuple[int, list[int]]]:
    """Write checked contacts (``contact_values``) with their emails; (contact id, email ids)
    each. An address already in the firm, or twice in the batch, is a Conflict."""
    if not values:
        return []
    addresses = [email["address"] for row in values for email in row["emails"]]
    taken = _first_taken(values[0]["firm_id"], addresses)
    if taken:
        raise Conflict(
            f"{taken} already belongs to a contact of this firm.", fields={"address": ["Already in use."]}
        )
    rows = [{key: value for key, value in row.items() if key != "emails"} for row in values]
    contact_ids = insert_with_ids(Contact.__table__, rows)
    email_rows = [
        {"firm_id": row["firm_id"], "contact_id": contact_id, **email}
        for contact_id, row in zip(contact_ids, values, strict=True)
        for email in row["emails"]
    ]
    email_ids = iter(insert_with_ids(ContactEmail.__table__, email_rows))
    return [
        (contact_id, [next(email_ids) for _ in row["emails"]])
        for contact_id, row in zip(contact_ids, values, strict=True)
    ]


def _first_taken(firm_id: int, addresses: list[str]) -> str | None:
    """An address listed twice, or already a contact's in the firm (one query per thousand)."""
    seen: set[str] = set()
    for address in addresses:
        if address in seen:
            return address
        seen.add(address)
    for start in range(0, len(addresses), 1000):
        found = db.session.scalar(
            select(ContactEmail.address)
            .where(ContactEmail.firm_id == firm_id)
            .where(ContactEmail.address.in_(addresses[start : start + 1000]))
            .limit(1)
        )
        if found:
            return found
    return None


def create_contact(firm_id: int, *, emails: list[dict[str, Any]], **fields: Any) -> Contact:
    """Create a contact with one or more emails."""
    [(contact_id, _email_ids)] = insert_contacts([contact_values(firm_id, fields, emails)])
    return db.session.get_one(Contact, contact_id)


def update_contact(contact: Contact, **changes: Any) -> Contact:
    unknown = set(changes) - set(CONTACT_FIELDS)
    if unknown:
        raise ValidationFailed("Unknown fields.", fields={k: ["Unknown field."] for k in sorted(unknown)})
    for key, value in changes.items():
        if key in ("first_name", "middle_name", "last_name"):
            value = (value or "").strip()
        setattr(contact, key, value)
    if not (contact.first_name or contact.last_name):
        raise ValidationFailed(
            "A contact needs a first or last name.", fields={"first_name": ["First or last name required."]}
        )
    db.session.flush()
    if {"first_name", "middle_name", "last_name"} & set(changes):
        search_text.refresh_for_contact(contact.id)
    return contact


def delete_contact(contact: Contact) -> None:
    """Delete a contact unless it is the last contact of an account (R-LNK-2)."""
    from portal_app.services.links import ensure_not_last_contact

    account_ids = [link.account_id for link in contact.links]
    for account_id in account_ids:
        ensure_not_last_contact(account_id)
    db.session.execute(delete(Contact).where(Contact.id == contact.id))
    db.session.expunge(contact)
    search_text.refresh_accounts(account_ids)


def add_email(contact: Contact, *, address: str, label: str = "", is_primary: bool = False) -> ContactEmail:
    """Add an email; it gets a settings row on every account the contact is linked to."""
    address = normalise_email(address, field="address")
    _ensure_address_free(contact.firm_id, address)
    if is_primary:
        _clear_primary(contact)
    email = ContactEmail(
        firm_id=contact.firm_id,
        contact_id=contact.id,
        address=address,
        label=label.strip(),
        is_primary=is_primary,
    )
    db.session.add(email)
    db.session.flush()
    account_ids = db.session.scalars(
        select(AccountContact.account_id).where(AccountContact.contact_id == contact.id)
    ).all()
    for account_id in account_ids:
        db.session.add(
            ContactSettings(
                firm_id=contact.firm_id, account_id=account_id, contact_id=contact.id, email_id=email.id
            )
        )
    db.session.flush()
    search_text.refresh_for_contact(contact.id)
    db.session.expire(contact, ["emails"])
    return email


def _clear_primary(contact: Contact) -> None:
    db.session.execute(
        update(ContactEmail)
        .where(ContactEmail.contact_id == contact.id, ContactEmail.is_primary.is_(True))
        .values(is_primary=False)
        .execution_options(synchronize_session="fetch")
    )


def update_email(
    email: ContactEmail,
    *,
    address: str | None = None,
    label: str | None = None,
    is_primary: bool | None = None,
) -> ContactEmail:
    """Edit an email's address, label or primary flag."""
    if address is not None:
        new_address = normalise_email(address, field="address")
        if new_address != email.address:
            from portal_app.services.invitations import address_changed

            _ensure_address_free(email.firm_id, new_address, except_id=email.id)
            old_address, email.address = email.address, new_address
            db.session.flush()
            address_changed(email, old_address)  # R-LOG-8
            search_text.refresh_for_contact(email.contact_id)
    if label is not None:
        email.label = label.strip()
    if is_primary:
        _clear_primary(email.contact)
        email.is_primary = True
    elif is_primary is False and email.is_primary:
        raise ValidationFailed(
            "Make another email primary instead.",
            fields={"is_primary": ["A contact keeps one primary email."]},
        )
    db.session.flush()
    db.session.expire(email.contact, ["emails"])
    return email


def remove_email(email: ContactEmail) -> None:
    """Remove an email (its settings go with it); a contact keeps at least one."""
    contact = email.contact
    others = [e for e in contact.emails if e.id != email.id]
    if not others:
        raise Conflict("A contact needs at least one email; add another before removing this one.")
    if email.is_primary:
        others[0].is_primary = True
    db.session.execute(delete(ContactEmail).where(ContactEmail.id == email.id))
    db.session.expunge(email)
    db.session.flush()
    search_text.refresh_for_contact(contact.id)
    db.session.expire(contact, ["emails"])


def list_contacts(
    firm_id: int, *, q: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[Contact], str | None]:
    """Contacts sorted by last then first name, with their emails, paged by cursor."""
    from sqlalchemy import and_, exists, func, or_
    from sqlalchemy.orm import selectinload

    from portal_app.services.account_list import decode_cursor, encode_cursor, like_pattern

    key = func.lower(Contact.last_name + " " + Contact.first_name)
    query = select(Contact, key).where(Contact.firm_id == firm_id).options(selectinload(Contact.emails))
    if q and q.strip():
        pattern = like_pattern(q.strip())
        query = query.where(
            or_(
                func.lower(Contact.first_name + " " + Contact.last_name).like(pattern, escape="\\"),
                key.like(pattern, escape="\\"),
                exists().where(
                    ContactEmail.contact_id == Contact.id, ContactEmail.address.like(pattern, escape="\\")
                ),
            )
        )
    if cursor:
        after_key, after_id = decode_cursor(cursor)
        query = query.where(or_(key > after_key, and_(key == after_key, Contact.id > after_id)))
    rows = db.session.execute(query.order_by(key, Contact.id).limit(limit + 1)).all()
    next_cursor = encode_cursor(rows[limit - 1][1], rows[limit - 1][0].id) if len(rows) > limit else None
    return [row[0] for row in rows[:limit]], next_cursor

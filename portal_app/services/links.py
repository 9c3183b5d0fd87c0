"""Links between accounts and contacts (R-LNK-1, R-LNK-2).

Linking is batch-shaped: ``link_pairs`` links any number of (account, contact) pairs of one firm
in a few statements, each email of a newly linked contact getting its settings row; the API's
single link and the CSV import both go through it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select

from portal_app.extensions import db
from portal_app.models import Account, AccountContact, Contact, ContactEmail, ContactSettings
from portal_app.services import search_text
from portal_app.services.errors import Conflict, NotFound, ValidationFailed
from portal_app.services.validation import parse_id
from portal_app.sql import id_in, insert_rows


def get_link(account: Account, contact_id: int | str) -> AccountContact:
    key = parse_id(contact_id)
    if key is None:
        raise NotFound("This contact is not linked to the account.")
    link = db.session.get(AccountContact, (account.id, key))
    if link is None:
        raise NotFound("This contact is not linked to the account.")
    return link


def _check_priority(signer_priority: int | None) -> None:
    if signer_priority is not None and not 1 <= signer_priority <= 1000:
        raise ValidationFailed("Signer priority is 1 to 1000.", fields={"signer_priority": ["1 to 1000."]})


def link_contact(
    account: Account, contact: Contact, *, description: str = "", signer_priority: int | None = None
) -> AccountContact:
    """Link a contact; each of its emails gets a settings row for this account."""
    if contact.firm_id != account.firm_id:
        raise NotFound("Contact not found.")
    if db.session.get(AccountContact, (account.id, contact.id)) is not None:
        raise Conflict("This contact is already linked to the account.")
    _check_priority(signer_priority)
    link_pairs(
        account.firm_id,
        [(account.id, contact.id)],
        description=description.strip(),
        signer_priority=signer_priority,
    )
    db.session.expire(account, ["links"])
    db.session.expire(contact, ["links"])
    return db.session.get_one(AccountContact, (account.id, contact.id))


def link_pairs(
    firm_id: int,
    pairs: Iterable[tuple[int, int]],
    *,
    description: str = "",
    signer_priority: int | None = None,
) -> set[tuple[int, int]]:
    """Link these (account, contact) pairs of the firm, those not linked yet; return the pairs
    linked now. Each email of a newly linked contact gets a settings row (all off) on the
    account, and the accounts' search text follows."""
    wanted = set(pairs)
    if not wanted:
        return set()
    linked = {
        (a, c)
        for a, c in db.session.execute(
            select(AccountContact.account_id, AccountContact.contact_id).where(
                id_in(AccountContact.account_id, {a for a, _ in wanted})
            )
        )
    }
    new = sorted(wanted - linked)
    if not new:
        return set()
    insert_rows(
        AccountContact.__table__,
        [
            {
                "account_id": a,
                "contact_id": c,
                "firm_id": firm_id,
                "description": description,
                "signer_priority": signer_priority,
            }
            for a, c in new
        ],
    )
    emails_by_contact: dict[int, list[int]] = {}
    for email_id, contact_id in db.session.execute(
        select(ContactEmail.id, ContactEmail.contact_id).where(
            id_in(ContactEmail.contact_id, {c for _, c in new})
        )
    ):
        emails_by_contact.setdefault(contact_id, []).append(email_id)
    insert_rows(
        ContactSettings.__table__,
        [
            {"firm_id": firm_id, "account_id": a, "contact_id": c, "email_id": e}
            for a, c in new
            for e in sorted(emails_by_contact.get(c, []))
        ],
    )
    search_text.refresh_accounts({a for a, _ in new})
    return set(new)


def update_link(
    link: AccountContact, *, description: str | None = None, signer_priority: int | None | type[...] = ...
) -> AccountContact:
    if description is not None:
        link.description = description.strip()
    if signer_priority is not ...:
        _check_priority(signer_priority)  # type: ignore[arg-type]
        link.signer_priority = signer_priority  # type: ignore[assignment]
    db.session.flush()
    return link


def ensure_not_last_contact(account_id: int) -> None:
    """R-LNK-2: an account keeps at least one contact."""
    count = db.session.scalar(
        select(func.count()).select_from(AccountContact).where(AccountContact.account_id == account_id)
    )
    if count is not None and count <= 1:
        raise Conflict(
            "This is the account's last contact. Link another contact before unlinking this one.",
            code="last_contact",
        )


def unlink_contact(link: AccountContact) -> None:
    """Unlink; the database removes the link's settings rows with it."""
    ensure_not_last_contact(link.account_id)
    account_id, contact_id = link.account_id, link.contact_id
    db.session.expunge(link)
    db.session.execute(
        delete(AccountContact).where(
            AccountContact.account_id == account_id, AccountContact.contact_id == contact_id
        )
    )
    search_text.refresh_accounts([account_id])
    db.session.flush()

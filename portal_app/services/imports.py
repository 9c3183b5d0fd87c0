"""CSV import of accounts, contacts and contact settings (R-IMP-1..4): rows checked one by one,
then applied a batch at a time with a few set-based statements per batch.

A row is one contact email on one account. Matching (R-IMP-4): an account by `external_id` when
given, else by its name when exactly one account of the firm has it, else a new account; a contact
by its email (unique in the firm), else a new contact. Settings and invitations go through
`apply_settings_change`, the service behind the single PATCH and the bulk update.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from portal_app.extensions import db
from portal_app.models import (
    Account,
    AccountContact,
    AccountTag,
    Contact,
    ContactEmail,
    ContactSettings,
    Job,
    StaffUser,
)
from portal_app.services import accounts as account_service
from portal_app.services import csv_files, search_text
from portal_app.services.audit import Actor
from portal_app.services.csv_files import COLUMNS
from portal_app.services.errors import DomainError
from portal_app.services.settings import INVITE_MISSING, INVITE_NONE, apply_settings_change
from portal_app.services.validation import normalise_email, text_problem
from portal_app.sql import id_in, insert_rows, insert_with_ids

KIND = "csv_import"
YES, NO = {"yes", "true", "1"}, {"no", "false", "0"}
FLAG_COLUMNS = ("login", "notify", "email_sync", "signatory")
LIMITS = {
    "account_name": 200,
    "external_id": 100,
    "company_name": 200,
    "company_address": 2000,
    "first_name": 100,
    "middle_name": 100,
    "last_name": 100,
    "email_label": 50,
    "phone": 50,
    "tags": 1000,
}


class RowRefused(Exception):
    """A row that cannot be imported; the message says why, naming the column."""


@dataclass
class ImportRow:
    number: int  # as the spreadsheet shows it (the header is row 1)
    cells: list[str]
    values: dict[str, str]
    email: str = ""
    flags: dict[str, bool] = field(default_factory=dict)  # the settings the row sets
    invite: bool = False
    tags: list[str] | None = None


@dataclass
class ImportOutcome:
    counts: Counter[str] = field(default_factory=Counter)  # created, updated, unchanged, refused, …
    errors: list[dict[str, Any]] = field(default_factory=list)


def _flag(values: dict[str, str], column: str) -> bool | None:
    raw = values.get(column, "").strip().lower()
    if raw == "":
        return None
    if raw in YES:
        return True
    if raw in NO:
        return False
    raise RowRefused(f"{column}: {values[column]!r} is not one of yes, no, true, false, 1, 0 (or empty).")


def parse_row(keys: Sequence[str], number: int, cells: list[str]) -> ImportRow:
    """Check one row on its own; raise RowRefused naming the column at fault."""
    if len(cells) > len(keys) and any(cell.strip() for cell in cells[len(keys) :]):
        raise RowRefused(f"This row has {len(cells)} cells but the header has {len(keys)} columns.")
    values = {key: cell.strip() for key, cell in zip(keys, cells, strict=False) if key in COLUMNS}
    for column, value in values.items():
        problem = text_problem(value)
        if problem:
            raise RowRefused(f"{column}: {problem}")
        if len(value) > LIMITS.get(column, 200):
            raise RowRefused(f"{column}: at most {LIMITS.get(column, 200)} characters.")
    if not values.get("account_name"):
        raise RowRefused("account_name: required.")
    if not values.get("email"):
        raise RowRefused("email: required.")
    try:
        email = normalise_email(values["email"])
    except DomainError:
        raise RowRefused(f"email: {values['email']!r} is not a valid email address.") from None
    account_type = values.get("account_type", "").lower()
    if account_type not in ("", "individual", "company"):
        raise RowRefused(f"account_type: {values['account_type']!r} is not individual or company.")
    values["account_type"] = account_type
    flags = {column: value for column in FLAG_COLUMNS if (value := _flag(values, column)) is not None}
    invite = bool(_flag(values, "send_invitation"))
    if invite and flags.get("login") is not True:
        raise RowRefused("send_invitation: only with login yes in the same row.")
    tags = None
    if values.get("tags"):
        tags = []
        for tag in (t.strip() for t in values["tags"].split(";")):
            if tag and len(tag) > 64:
                raise RowRefused("tags: each tag is at most 64 characters.")
            if tag and tag.casefold() not in {t.casefold() for t in tags}:
                tags.append(tag)
    return ImportRow(
        number=number, cells=cells, values=values, email=email, flags=flags, invite=invite, tags=tags
    )


def error_item(row_number: int, cells: list[str], email: str, reason: str) -> dict[str, Any]:
    return {
        "account_id": None,
        "contact_id": None,
        "email": email or None,
        "row": row_number,
        "reason": reason,
        "cells": cells,
    }


def import_rows(
    firm_id: int, rows: list[ImportRow], *, staff: StaffUser | None, known: set[str]
) -> ImportOutcome:
    """Apply checked rows in the caller's transaction. ``known`` holds the addresses earlier rows
    of this file created (a dry run rolls its batches back, yet a later row must see them)."""
    outcome = ImportOutcome()
    changed: dict[int, bool] = {}  # row number -> something changed
    created: set[int] = set()
    touched_accounts: set[int] = set()

    # --- accounts: by external_id, else by a name only one account has, else new
    external = {r.values["external_id"] for r in rows if r.values.get("external_id")}
    by_external = (
        {
            a.external_id: a
            for a in db.session.scalars(
                select(Account).where(Account.firm_id == firm_id, Account.external_id.in_(external))
            )
        }
        if external
        else {}
    )
    names = {r.values["account_name"].lower() for r in rows if not r.values.get("external_id")}
    by_name: dict[str, list[Account]] = {}
    if names:
        for account in db.session.scalars(
            select(Account).where(Account.firm_id == firm_id, func.lower(Account.name).in_(names))
        ):
            by_name.setdefault(account.name.lower(), []).append(account)
    new_accounts: dict[tuple[str, str], dict[str, Any]] = {}  # key -> the new account's row
    new_tags: dict[tuple[str, str], list[str]] = {}
    account_key: dict[int, tuple[str, str]] = {}  # row number -> key of a new account
    account_id: dict[int, int] = {}  # row number -> id of an existing account
    for row in list(rows):
        ext = row.values.get("external_id")
        account = by_external.get(ext) if ext else None
        if account is None and not ext:
            found = by_name.get(row.values["account_name"].lower(), [])
            account = found[0] if len(found) == 1 else None
        key = ("external_id", ext) if ext else ("name", row.values["account_name"].lower())
        try:
            if account is None:
                if key not in new_accounts:
                    new_accounts[key] = _new_account_row(firm_id, row)
                    new_tags[key] = row.tags or []
                    created.add(row.number)
                account_key[row.number] = key
            else:
                changed[row.number] = _update_account(account, row) or changed.get(row.number, False)
                account_id[row.number] = account.id
        except RowRefused as exc:
            outcome.errors.append(error_item(row.number, row.cells, row.email, str(exc)))
            rows.remove(row)
    keys = list(new_accounts)
    new_ids = dict(
        zip(keys, insert_with_ids(Account.__table__, [new_accounts[k] for k in keys]), strict=True)
    )
    account_id.update({number: new_ids[key] for number, key in account_key.items()})
    insert_rows(
        AccountTag.__table__,
        [
            {"account_id": new_ids[key], "firm_id": firm_id, "tag": tag}
            for key, tags in new_tags.items()
            for tag in tags
        ],
    )
    touched_accounts.update(new_ids.values())

    # --- contacts by email, else new
    addresses = {r.email for r in rows}
    existing = (
        {
            e.address: e
            for e in db.session.scalars(
                select(ContactEmail).where(
                    ContactEmail.firm_id == firm_id, ContactEmail.address.in_(addresses)
                )
            )
        }
        if addresses
        else {}
    )
    contacts = (
        {
            c.id: c
            for c in db.session.scalars(
                select(Contact).where(id_in(Contact.id, {e.contact_id for e in existing.values()}))
            )
        }
        if existing
        else {}
    )
    new_contacts: dict[str, tuple[dict[str, Any], str]] = {}  # address -> (contact row, label)
    for row in list(rows):
        email = existing.get(row.email)
        if email is None and row.email in new_contacts:
            continue
        if email is None:
            first, middle, last = (row.values.get(k, "") for k in ("first_name", "middle_name", "last_name"))
            if not (first or last):
                reason = "first_name or last_name: a new contact needs one."
                outcome.errors.append(error_item(row.number, row.cells, row.email, reason))
                rows.remove(row)
                continue
            phones = [{"label": "", "number": row.values["phone"]}] if row.values.get("phone") else []
            contact = {
                "firm_id": firm_id,
                "first_name": first,
                "middle_name": middle,
                "last_name": last,
                "phones": phones,
                "addresses": [],
                "custom_fields": {},
            }
            new_contacts[row.email] = (contact, row.values.get("email_label", ""))
            if row.email not in known:
                created.add(row.number)
                known.add(row.email)
        else:
            updated = _update_contact(contacts[email.contact_id], email, row)
            changed[row.number] = updated or changed.get(row.number, False)
    fresh = list(new_contacts)
    contact_ids = insert_with_ids(Contact.__table__, [new_contacts[a][0] for a in fresh])
    email_ids = insert_with_ids(
        ContactEmail.__table__,
        [
            {
                "firm_id": firm_id,
                "contact_id": c,
                "address": a,
                "label": new_contacts[a][1],
                "is_primary": True,
            }
            for a, c in zip(fresh, contact_ids, strict=True)
        ],
    )
    email_of: dict[str, tuple[int, int]] = {e.address: (e.id, e.contact_id) for e in existing.values()}
    email_of.update({a: (e, c) for a, e, c in zip(fresh, email_ids, contact_ids, strict=True)})

    # --- links (and a settings row for each email of a newly linked contact)
    pairs = {(account_id[r.number], email_of[r.email][1]) for r in rows}
    linked = {
        (a, c)
        for a, c in db.session.execute(
            select(AccountContact.account_id, AccountContact.contact_id).where(
                id_in(AccountContact.account_id, {a for a, _ in pairs})
            )
        )
    }
    new_links = sorted(pairs - linked)
    if new_links:
        insert_rows(
            AccountContact.__table__,
            [{"account_id": a, "contact_id": c, "firm_id": firm_id, "description": ""} for a, c in new_links],
        )
        emails_by_contact: dict[int, list[int]] = {}
        for email_id, contact_id in db.session.execute(
            select(ContactEmail.id, ContactEmail.contact_id).where(
                id_in(ContactEmail.contact_id, {c for _, c in new_links})
            )
        ):
            emails_by_contact.setdefault(contact_id, []).append(email_id)
        insert_rows(
            ContactSettings.__table__,
            [
                {"firm_id": firm_id, "account_id": a, "contact_id": c, "email_id": e}
                for a, c in new_links
                for e in emails_by_contact.get(c, [])
            ],
        )
        linked_now = set(new_links)
        touched_accounts.update(a for a, _ in new_links)
        for row in rows:
            if (account_id[row.number], email_of[row.email][1]) in linked_now:
                changed[row.number] = True
    search_text.refresh_accounts(touched_accounts)

    # --- settings and invitations, through the same service as by hand
    settings_rows = {
        (s.account_id, s.email_id): s
        for s in db.session.scalars(
            select(ContactSettings).where(id_in(ContactSettings.account_id, {a for a, _ in pairs}))
        )
    }
    groups: dict[tuple[tuple[str, bool], ...], list[tuple[ImportRow, ContactSettings]]] = {}
    for row in rows:
        settings = settings_rows[(account_id[row.number], email_of[row.email][0])]
        groups.setdefault((*sorted(row.flags.items()), ("invite", row.invite)), []).append((row, settings))
    actor = Actor("staff", staff.id, staff.email) if staff else Actor.system("import")
    for key, members in groups.items():
        change = {name: value for name, value in key if name != "invite"}
        invite = dict(key)["invite"]
        if not change and not invite:
            continue
        report = apply_settings_change(
            list({s.id: s for _, s in members}.values()),  # a row repeated in the file counts once
            change,
            actor=actor,
            sent_by=staff,
            invite=INVITE_MISSING if invite else INVITE_NONE,
        )
        outcome.counts["invitations_sent"] += report.invitations_sent
        for row, settings in members:
            if settings.id in report.changed_fields or settings.id in report.invited:
                changed[row.number] = True

    for row in rows:
        status = "created" if row.number in created else "updated" if changed.get(row.number) else "unchanged"
        outcome.counts[status] += 1
    outcome.counts["refused"] += len(outcome.errors)
    outcome.counts["accounts_created"] += len(new_accounts)
    outcome.counts["contacts_created"] += len(new_contacts)
    return outcome


def _new_account_row(firm_id: int, row: ImportRow) -> dict[str, Any]:
    account_type = row.values.get("account_type") or "individual"
    company = {k: row.values.get(k) or None for k in ("company_name", "company_address")}
    if account_type != "company" and any(company.values()):
        raise RowRefused("company_name, company_address: only for account_type company.")
    return {
        "firm_id": firm_id,
        "name": row.values["account_name"],
        "external_id": row.values.get("external_id") or None,
        "type": account_type,
        "custom_fields": {},
        "search_text": "",
        **company,
    }


def _update_account(account: Account, row: ImportRow) -> bool:
    """Non-empty cells change an existing account; empty cells change nothing."""
    changes: dict[str, Any] = {}
    if row.values.get("external_id") and row.values["account_name"] != account.name:
        changes["name"] = row.values["account_name"]
    if row.values.get("account_type") and row.values["account_type"] != account.type:
        changes["type"] = row.values["account_type"]
    for column in ("company_name", "company_address"):
        if row.values.get(column) and row.values[column] != getattr(account, column):
            changes[column] = row.values[column]
    final_type = changes.get("type", account.type)
    if final_type != "company" and (row.values.get("company_name") or row.values.get("company_address")):
        raise RowRefused("company_name, company_address: only for account_type company.")
    if row.tags is not None and sorted(t.casefold() for t in row.tags) != sorted(
        t.casefold() for t in account.tag_names
    ):
        changes["tags"] = row.tags
    if not changes:
        return False
    try:
        account_service.update_account(account, **changes)
    except DomainError as exc:
        raise RowRefused(exc.message) from None
    return True


def _update_contact(contact: Contact, email: ContactEmail, row: ImportRow) -> bool:
    changed = False
    for column in ("first_name", "middle_name", "last_name"):
        value = row.values.get(column, "")
        if value and value != getattr(contact, column):
            setattr(contact, column, value)
            changed = True
    if row.values.get("email_label") and row.values["email_label"] != email.label:
        email.label = row.values["email_label"]
        changed = True
    phone = row.values.get("phone")
    if phone and phone not in {p.get("number") for p in contact.phones or []}:
        contact.phones = [*(contact.phones or []), {"label": "", "number": phone}]
        changed = True
    if changed:
        db.session.flush()
        search_text.refresh_for_contact(contact.id)
    return changed


def start_import(staff: StaffUser, data: bytes, *, filename: str, dry_run: bool) -> Job:
    """Check and keep the upload, then queue the job (202); a bad file is a 4xx, nothing kept."""
    upload = csv_files.inspect(data)
    job = Job(
        firm_id=staff.firm_id,
        staff_user_id=staff.id,
        kind=KIND,
        params={"file": asdict(upload), "filename": filename[:200], "dry_run": dry_run},
        progress_total=upload.rows,
    )
    db.session.add(job)
    db.session.flush()
    from portal_app.jobs.staff_jobs import enqueue_job

    enqueue_job(job.id)
    return job


def errors_csv(job: Job) -> str:
    """The refused rows exactly as uploaded (same columns, now UTF-8) plus an `error` column, so
    they can be fixed in Excel and uploaded again."""
    upload = csv_files.CsvFile(**job.params["file"])
    header = list(upload.header)
    keys = [name.strip().lower() for name in header]
    slot = keys.index("error") if "error" in keys else None
    if slot is None:
        header.append("error")
    out = io.StringIO()
    writer = csv.writer(out, delimiter=upload.delimiter, lineterminator="\r\n")
    writer.writerow(header)
    for error in sorted((e for e in job.errors if e.get("row")), key=lambda e: e["row"]):
        cells = list(error.get("cells") or [])
        cells += [""] * (len(upload.header) - len(cells))
        if slot is None:
            cells.append(error["reason"])
        else:
            cells[slot] = error["reason"]
        writer.writerow(cells)
    return "\ufeff" + out.getvalue()  # a BOM, so Excel reads it as UTF-8

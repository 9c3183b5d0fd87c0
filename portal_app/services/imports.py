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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from portal_app.extensions import db
from portal_app.models import (
    Account,
    Contact,
    ContactEmail,
    ContactSettings,
    Job,
    StaffUser,
)
from portal_app.services import accounts as account_service
from portal_app.services import contacts as contacts_service
from portal_app.services import csv_files, links, search_text
from portal_app.services.audit import Actor
from portal_app.services.errors import DomainError
from portal_app.services.import_rows import ImportRow, RowRefused, error_item
from portal_app.services.settings import INVITE_MISSING, INVITE_NONE, apply_settings_change
from portal_app.services.staff_jobs import enqueue_job
from portal_app.sql import id_in

KIND = "csv_import"


@dataclass
class ImportOutcome:
    counts: Counter[str] = field(default_factory=Counter)  # created, updated, unchanged, refused, …
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: ImportOutcome) -> None:
        self.counts.update(other.counts)
        self.errors.extend(other.errors)


@dataclass
class _Batch:
    """One batch of checked rows on its way in, stage by stage (``import_rows``)."""

    firm_id: int
    rows: list[ImportRow]
    seen: set[str]  # what earlier batches of a dry run created (they were rolled back)
    outcome: ImportOutcome = field(default_factory=ImportOutcome)
    created: set[int] = field(default_factory=set)  # rows that created an account or a contact
    changed: set[int] = field(default_factory=set)  # rows that changed something
    account_of: dict[int, int] = field(default_factory=dict)  # row number -> account id
    email_of: dict[str, tuple[int, int]] = field(default_factory=dict)  # address -> (email, contact)

    def refuse(self, row: ImportRow, reason: str) -> None:
        self.outcome.errors.append(error_item(row.number, row.cells, row.email, reason))
        self.rows.remove(row)

    def first_seen(self, key: str, row: ImportRow) -> bool:
        """A new account or contact, created by this row unless an earlier one of the file did."""
        if key in self.seen:
            return False
        self.seen.add(key)
        self.created.add(row.number)
        return True

    def link_of(self, row: ImportRow) -> tuple[int, int]:
        return self.account_of[row.number], self.email_of[row.email][1]


def import_rows(
    firm_id: int, rows: list[ImportRow], *, staff: StaffUser | None, seen: set[str]
) -> ImportOutcome:
    """Apply checked rows in the caller's transaction, through the same services as the API:
    accounts, contacts, links, then settings and invitations. ``seen`` names the accounts and
    contacts earlier batches of this file created; it grows with this batch's (a dry run rolls
    its batches back, so the job keeps it)."""
    batch = _Batch(firm_id, list(rows), seen)
    _accounts(batch)
    _contacts(batch)
    pairs = {batch.link_of(row) for row in batch.rows}
    linked_now = links.link_pairs(firm_id, pairs)
    batch.changed.update(row.number for row in batch.rows if batch.link_of(row) in linked_now)
    _settings(batch, pairs, staff)
    counts = batch.outcome.counts
    for row in batch.rows:
        if row.number in batch.created:
            counts["created"] += 1
        else:
            counts["updated" if row.number in batch.changed else "unchanged"] += 1
    counts["refused"] += len(batch.outcome.errors)
    return batch.outcome


def _account_key(row: ImportRow) -> str:
    ext = row.values.get("external_id")
    return f"account:id:{ext}" if ext else f"account:name:{row.values['account_name'].lower()}"


def _accounts(batch: _Batch) -> None:
    """R-IMP-4: an account by external_id, else by a name only one account has, else new."""
    rows, firm_id = batch.rows, batch.firm_id
    external = {r.values["external_id"] for r in rows if r.values.get("external_id")}
    by_external: dict[str, Account] = {}
    if external:
        query = select(Account).where(Account.firm_id == firm_id, Account.external_id.in_(external))
        by_external = {a.external_id: a for a in db.session.scalars(query) if a.external_id}
    names = {r.values["account_name"].lower() for r in rows if not r.values.get("external_id")}
    by_name: dict[str, list[Account]] = {}
    if names:
        query = select(Account).where(Account.firm_id == firm_id, func.lower(Account.name).in_(names))
        for account in db.session.scalars(query):
            by_name.setdefault(account.name.lower(), []).append(account)
    new: dict[str, dict[str, Any]] = {}  # account key -> the new account's checked values
    waiting: dict[int, str] = {}  # row number -> key of its new account
    for row in list(rows):
        ext = row.values.get("external_id")
        account = by_external.get(ext) if ext else None
        if account is None and not ext:
            found = by_name.get(row.values["account_name"].lower(), [])
            account = found[0] if len(found) == 1 else None
        try:
            if account is not None:
                if _update_account(account, row):
                    batch.changed.add(row.number)
                batch.account_of[row.number] = account.id
                continue
            key = _account_key(row)
            if key not in new:
                new[key] = _checked(account_service.account_values, firm_id, _account_fields(row))
                if batch.first_seen(key, row):
                    batch.outcome.counts["accounts_created"] += 1
            waiting[row.number] = key
        except RowRefused as exc:
            batch.refuse(row, str(exc))
    ids = dict(zip(new, account_service.insert_accounts(list(new.values())), strict=True))
    batch.account_of.update({number: ids[key] for number, key in waiting.items()})


def _account_fields(row: ImportRow) -> dict[str, Any]:
    return {
        "name": row.values["account_name"],
        "external_id": row.values.get("external_id"),
        "type": row.values.get("account_type") or "individual",
        "company_name": row.values.get("company_name"),
        "company_address": row.values.get("company_address"),
        "tags": row.tags or [],
    }


def _contacts(batch: _Batch) -> None:
    """R-IMP-4: a contact by its email (unique in the firm), else a new contact."""
    addresses = {r.email for r in batch.rows}
    existing: dict[str, ContactEmail] = {}
    if addresses:
        query = select(ContactEmail).where(
            ContactEmail.firm_id == batch.firm_id, ContactEmail.address.in_(addresses)
        )
        existing = {e.address: e for e in db.session.scalars(query)}
    contacts: dict[int, Contact] = {}
    if existing:
        query = select(Contact).where(id_in(Contact.id, {e.contact_id for e in existing.values()}))
        contacts = {c.id: c for c in db.session.scalars(query)}
    new: dict[str, dict[str, Any]] = {}  # address -> the new contact's checked values
    for row in list(batch.rows):
        email = existing.get(row.email)
        if email is not None:
            if _update_contact(contacts[email.contact_id], email, row):
                batch.changed.add(row.number)
            continue
        if row.email in new:
            continue
        try:
            fields, emails = _contact_fields(row)
            new[row.email] = _checked(contacts_service.contact_values, batch.firm_id, fields, emails)
        except RowRefused as exc:
            batch.refuse(row, str(exc))
            continue
        if batch.first_seen(f"email:{row.email}", row):
            batch.outcome.counts["contacts_created"] += 1
    ids = contacts_service.insert_contacts(list(new.values()))
    batch.email_of = {e.address: (e.id, e.contact_id) for e in existing.values()}
    batch.email_of.update({a: (emails[0], c) for a, (c, emails) in zip(new, ids, strict=True)})


def contact_name(row: ImportRow) -> tuple[str, str, str]:
    """R-IMP-3: first, middle and last name of a new contact. Without a name in the row, an
    individual account's contact is named after the account (its name is the person's), any
    other after the email's local part; either goes in ``last_name``, and staff can edit it."""
    first, middle, last = (row.values.get(k, "") for k in ("first_name", "middle_name", "last_name"))
    if first or last:
        return first, middle, last
    if (row.values.get("account_type") or "individual") == "individual":
        return "", middle, row.values["account_name"]
    return "", middle, row.email.partition("@")[0]


def _contact_fields(row: ImportRow) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    first, middle, last = contact_name(row)
    phones = [{"label": "", "number": row.values["phone"]}] if row.values.get("phone") else []
    fields = {"first_name": first, "middle_name": middle, "last_name": last, "phones": phones}
    return fields, [{"address": row.email, "label": row.values.get("email_label", ""), "is_primary": True}]


def _checked(check: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """A service's check of one new row, its refusal said as the import says it (column first)."""
    try:
        return check(*args)
    except DomainError as exc:
        columns = ", ".join(sorted(exc.fields)) if exc.fields else ""
        raise RowRefused(f"{columns}: {exc.message}" if columns else exc.message) from None


def _settings(batch: _Batch, pairs: set[tuple[int, int]], staff: StaffUser | None) -> None:
    """Settings and invitations, through the same service as the PATCH and the bulk update."""
    query = select(ContactSettings).where(id_in(ContactSettings.account_id, {a for a, _ in pairs}))
    settings_rows = {(s.account_id, s.email_id): s for s in db.session.scalars(query)}
    groups: dict[tuple[tuple[str, bool], ...], list[tuple[ImportRow, ContactSettings]]] = {}
    for row in batch.rows:
        settings = settings_rows[(batch.account_of[row.number], batch.email_of[row.email][0])]
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
        batch.outcome.counts["invitations_sent"] += report.invitations_sent
        batch.changed.update(
            row.number
            for row, settings in members
            if settings.id in report.changed_fields or settings.id in report.invited
        )


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

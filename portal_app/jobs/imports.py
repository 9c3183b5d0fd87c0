"""The CSV import as a staff job (R-IMP-*): the stored file is read row by row from the cursor,
and each batch of rows commits with the cursor (see staff_jobs). A dry run does every batch in a
savepoint it rolls back, so it checks and counts exactly what an import would, and changes nothing."""

from __future__ import annotations

import logging
from collections import Counter
from itertools import islice

from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from portal_app.extensions import db
from portal_app.jobs import staff_jobs
from portal_app.jobs.staff_jobs import JobKind
from portal_app.models import Job, StaffUser
from portal_app.services import csv_files, imports
from portal_app.services.import_rows import ImportRow, RowRefused, error_item, parse_row
from portal_app.services.imports import ImportOutcome

log = logging.getLogger(__name__)

COUNTS = (
    "created",
    "updated",
    "unchanged",
    "refused",
    "accounts_created",
    "contacts_created",
    "invitations_sent",
)


def upload_of(job: Job) -> csv_files.CsvFile:
    return csv_files.CsvFile(**job.params["file"])


def _start(job: Job) -> None:
    job.result = {**{key: 0 for key in COUNTS}, "rows": job.progress_total, "dry_run": job.params["dry_run"]}
    job.errors = []


def _run_batch(job: Job) -> None:
    upload = upload_of(job)
    size = current_app.config["IMPORT_BATCH_ROWS"]
    keys = [name.strip().lower() for name in upload.header]
    staff = db.session.get(StaffUser, job.staff_user_id) if job.staff_user_id else None
    batch = list(islice(csv_files.read_rows(upload, skip=job.cursor), size))
    parsed: list[ImportRow] = []
    errors = []
    for number, cells in batch:
        try:
            parsed.append(parse_row(keys, number, cells))
        except RowRefused as exc:
            errors.append(error_item(number, cells, cells_email(keys, cells), str(exc)))
    seen = set(job.dry_run_seen or [])
    outcome = _apply(job, parsed, staff, seen)
    counts = dict(job.result)
    for key in COUNTS:
        counts[key] = counts.get(key, 0) + outcome.counts.get(key, 0)
    counts["refused"] += len(errors)
    job.result = counts
    job.errors = [*job.errors, *errors, *outcome.errors]
    job.cursor += len(batch)
    _refresh_statistics(job.cursor, size)
    if job.params["dry_run"]:
        job.dry_run_seen = sorted(seen)  # with the cursor, in this batch's commit


def _apply(job: Job, rows: list[ImportRow], staff: StaffUser | None, seen: set[str]) -> ImportOutcome:
    """The batch in a savepoint (rolled back for a dry run), row by row if one row breaks it."""

    def attempt(chunk: list[ImportRow]) -> ImportOutcome:
        mine = set(seen)  # a batch that fails is tried again row by row: it must not count twice
        outcome = imports.import_rows(job.firm_id, chunk, staff=staff, seen=mine)
        seen.update(mine)
        return outcome

    def failed(row: ImportRow, exc: DBAPIError) -> ImportOutcome:
        reason = f"Could not import: {type(exc.orig or exc).__name__}."
        error = error_item(row.number, row.cells, row.email, reason)
        return ImportOutcome(counts=Counter(refused=1), errors=[error])

    return staff_jobs.batch_then_each(job, rows, attempt, failed=failed, add=ImportOutcome.add)


STATISTICS_TABLES = ("accounts", "contacts", "contact_emails", "account_contacts", "contact_settings")


def _refresh_statistics(rows_done: int, batch: int) -> None:
    """ANALYZE the tables an import fills after batch 1, 2, 4, 8, …: a firm's first import into
    near-empty tables would otherwise keep the plans of an empty table (foreign-key checks that
    scan the whole table for every row, so each batch is slower than the last)."""
    done = rows_done // batch
    if db.session.get_bind().dialect.name != "postgresql" or done & (done - 1):
        return
    db.session.execute(text(f"ANALYZE {', '.join(STATISTICS_TABLES)}"))


def cells_email(keys: list[str], cells: list[str]) -> str:
    values = dict(zip(keys, cells, strict=False))
    return (values.get("email") or "").strip()


def _title(job: Job) -> str:
    r = job.result or {}
    verb = "Import check (dry run)" if job.params.get("dry_run") else "Import"
    tail = "; nothing was changed" if job.params.get("dry_run") else ""
    return (
        f"{verb} done: {r.get('created', 0)} created, {r.get('updated', 0)} updated, "
        f"{r.get('unchanged', 0)} unchanged, {r.get('refused', 0)} refused{tail}"
    )


JOB_KIND = JobKind(
    start=_start,
    run_batch=_run_batch,
    finished=lambda job: job.cursor >= job.progress_total,
    title=_title,
    label="CSV import",
    report_kind="import_report",
)

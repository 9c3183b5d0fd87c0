"""The CSV import as a staff job (R-IMP-*): the stored file is read row by row from the cursor,
and each batch of rows commits with the cursor (see staff_jobs). A dry run does every batch in a
savepoint it rolls back, so it checks and counts exactly what an import would, and changes nothing."""

from __future__ import annotations

import logging
from itertools import islice

from flask import current_app
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from portal_app.extensions import db
from portal_app.jobs.staff_jobs import JobKind, register_kind
from portal_app.models import Job, StaffUser
from portal_app.services import csv_files, imports

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


class _DryRun(Exception):
    """Raised at the end of a dry-run batch to roll its savepoint back."""


# A dry run rolls every batch back, so the addresses earlier rows "created" live here, in this
# worker, for the rest of the file. A dry run whose worker died starts again from row 2 (it
# changed nothing, so that is safe).
_DRY_RUN_ADDRESSES: dict[int, set[str]] = {}


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
    parsed: list[imports.ImportRow] = []
    errors = []
    for number, cells in batch:
        try:
            parsed.append(imports.parse_row(keys, number, cells))
        except imports.RowRefused as exc:
            errors.append(imports.error_item(number, cells, cells_email(keys, cells), str(exc)))
    known: set[str] = set()
    if job.params["dry_run"]:
        if job.id not in _DRY_RUN_ADDRESSES and job.cursor > 0:
            _start(job)  # another worker began this dry run and died: begin again
            job.cursor = 0
            return
        known = _DRY_RUN_ADDRESSES.setdefault(job.id, set())
    outcome = _apply(job, parsed, staff, known)
    counts = dict(job.result)
    for key in COUNTS:
        counts[key] = counts.get(key, 0) + outcome.counts.get(key, 0)
    counts["refused"] += len(errors)
    job.result = counts
    job.errors = [*job.errors, *errors, *outcome.errors]
    job.cursor += len(batch)
    _refresh_statistics(job.cursor, size)
    if job.params["dry_run"] and job.cursor >= job.progress_total:
        _DRY_RUN_ADDRESSES.pop(job.id, None)


def _apply(
    job: Job, rows: list[imports.ImportRow], staff: StaffUser | None, known: set[str]
) -> imports.ImportOutcome:
    """The batch in a savepoint: kept, or rolled back for a dry run. If the set-based batch
    breaks on one row, each row is tried in a savepoint of its own."""

    def attempt(chunk: list[imports.ImportRow]) -> imports.ImportOutcome:
        result: imports.ImportOutcome | None = None
        try:
            with db.session.begin_nested():
                result = imports.import_rows(job.firm_id, list(chunk), staff=staff, known=known)
                if job.params["dry_run"]:
                    raise _DryRun
        except _DryRun:
            pass
        assert result is not None
        return result

    try:
        return attempt(rows)
    except DBAPIError:
        log.warning("import job %s: batch at row %s failed; row by row", job.id, job.cursor, exc_info=True)
        total = imports.ImportOutcome()
        for row in rows:
            try:
                one = attempt([row])
            except DBAPIError as exc:
                total.errors.append(
                    imports.error_item(
                        row.number,
                        row.cells,
                        row.email,
                        f"Could not import: {type(exc.orig or exc).__name__}.",
                    )
                )
                total.counts["refused"] += 1
                continue
            total.counts.update(one.counts)
            total.errors.extend(one.errors)
        return total


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


register_kind(
    imports.KIND,
    JobKind(
        start=_start,
        run_batch=_run_batch,
        finished=lambda job: job.cursor >= job.progress_total,
        title=_title,
        label="CSV import",
        report_kind="import_report",
    ),
)

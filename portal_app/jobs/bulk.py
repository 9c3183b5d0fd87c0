"""The bulk update of contact settings as a staff job (R-BLK-*): targets resolved at the start,
then whole accounts a batch at a time (see staff_jobs for how batches commit and resume)."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy.exc import DBAPIError

from portal_app.extensions import db
from portal_app.jobs import staff_jobs
from portal_app.jobs.staff_jobs import JobKind
from portal_app.models import Job, StaffUser
from portal_app.services import bulk
from portal_app.text import count

log = logging.getLogger(__name__)


def _start(job: Job) -> None:
    """Resolve the targets (a filter is resolved now, as the job starts)."""
    targets, errors = bulk.resolve_targets(job.firm_id, job.params)
    job.targets = targets
    job.progress_total = len(targets)
    job.errors = errors
    job.result = {
        **bulk.empty_result(len(targets)),
        "errors": len(errors),
        "dry_run": bool(job.params.get("dry_run")),
    }


def _run_batch(job: Job) -> None:
    assert job.targets is not None
    size = current_app.config["BULK_BATCH_ACCOUNTS"]
    batch = job.targets[job.cursor : job.cursor + size]
    staff = db.session.get(StaffUser, job.staff_user_id) if job.staff_user_id else None

    def failed(account_id: int, exc: DBAPIError) -> bulk.BatchOutcome:
        reason = f"Could not change this account: {type(exc.orig or exc).__name__}."
        return bulk.BatchOutcome(errors=bulk.account_errors(account_id, reason))

    outcome = staff_jobs.batch_then_each(
        job,
        batch,
        lambda accounts: bulk.apply_batch(job.firm_id, accounts, job.params, staff=staff),
        failed=failed,
        add=bulk.BatchOutcome.add,
    )
    job.cursor += len(batch)
    job.result = bulk.add_to_result(job.result, outcome)
    job.errors = [*job.errors, *outcome.errors]


def _title(job: Job) -> str:
    r = job.result or {}
    if job.params.get("dry_run"):
        return (
            f"Bulk update check (dry run) done: {r.get('accounts_changed', 0)} of "
            f"{count(r.get('accounts', 0), 'account')} would change, "
            f"{count(r.get('emails_changed', 0), 'email')}, "
            f"{count(r.get('invitations_sent', 0), 'invitation')}, {count(r.get('errors', 0), 'error')}; "
            "nothing was changed"
        )
    return (
        f"Bulk update done: {r.get('accounts_changed', 0)} of {count(r.get('accounts', 0), 'account')} "
        f"changed, {count(r.get('emails_changed', 0), 'email')}, "
        f"{count(r.get('invitations_sent', 0), 'invitation')} sent, {count(r.get('errors', 0), 'error')}"
    )


JOB_KIND = JobKind(
    start=_start,
    run_batch=_run_batch,
    finished=lambda job: job.targets is not None and job.cursor >= len(job.targets),
    title=_title,
    label="Bulk update of contact settings",
    report_kind="bulk_update_report",
)

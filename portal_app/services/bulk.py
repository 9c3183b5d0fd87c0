"""Bulk update of contact settings (R-BLK-1..3): staff choose accounts (ids, or the list's
filters) and, for each of login, notify and email sync, nothing, enable or disable. The change
is the one `apply_settings_change` makes by hand, applied a batch of whole accounts at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal_app.extensions import db
from portal_app.models import BULK_FLAGS, Account, ContactEmail, ContactSettings, Job, StaffUser
from portal_app.services import account_list
from portal_app.services.audit import Actor
from portal_app.services.errors import ValidationFailed
from portal_app.services.settings import INVITE_MISSING, INVITE_NONE, ChangeReport, apply_settings_change
from portal_app.services.staff_jobs import enqueue_job
from portal_app.services.validation import parse_id
from portal_app.sql import id_in

KIND = "bulk_contact_settings"
TOGGLES = BULK_FLAGS
ACTIONS = {"nothing": None, "enable": True, "disable": False}
BATCH_ACCOUNTS = 200  # accounts per dry-run step (the job's batch size is BULK_BATCH_ACCOUNTS)
MAX_ACCOUNT_IDS = 100_000
NO_SUCH_ACCOUNT = "No account with this id in your firm (it may have been deleted)."


@dataclass
class BatchOutcome:
    report: ChangeReport = field(default_factory=ChangeReport)
    accounts_changed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, other: BatchOutcome) -> None:
        self.report.add(other.report)
        self.accounts_changed += other.accounts_changed
        self.errors.extend(other.errors)


def settings_change(params: dict[str, Any]) -> dict[str, Any]:
    """The per-row change a bulk request asks for (preferences only when enabling notify)."""
    change = {key: ACTIONS[params.get(key, "nothing")] for key in TOGGLES}
    change = {key: value for key, value in change.items() if value is not None}
    if params.get("notification_preferences") and change.get("notify") is True:
        change["notification_preferences"] = params["notification_preferences"]
    return change


def check_request(params: dict[str, Any]) -> None:
    """What the schema cannot say: ids or a filter, not both, and something to do."""
    if ("account_ids" in params) == ("filter" in params):
        raise ValidationFailed(
            "Give either account_ids or filter.", fields={"account_ids": ["Either account_ids or filter."]}
        )
    if not settings_change(params) and not params.get("send_invitations"):
        raise ValidationFailed(
            "Nothing to do: choose enable or disable for a setting, or send invitations.",
            fields={"login": ["Choose enable or disable for at least one setting."]},
        )
    if params.get("notification_preferences") and params.get("notify") != "enable":
        raise ValidationFailed(
            "Notification preferences go with enabling notify.",
            fields={"notification_preferences": ["Only with notify: enable."]},
        )
    if params.get("send_invitations") and params.get("login") == "disable":
        raise ValidationFailed(
            "Invitations go to emails with login on.",
            fields={"send_invitations": ["Not with login: disable."]},
        )


def start(
    staff: StaffUser, params: dict[str, Any], *, idempotency_key: str | None, dry_run: bool = False
) -> tuple[Job, bool]:
    """Create the job, or return the one this Idempotency-Key already started; True if new.

    A dry run is a job too, like an import's: it runs every batch and reports what would change,
    changing nothing (one answer for both, and a check of 100 000 accounts never holds a request
    open). It ignores the Idempotency-Key, so a later real run with that key is not mistaken for
    it. A filter that matches no account is refused at once."""
    check_request(params)
    matches = "filter" not in params or account_list.matching_account_ids(
        staff.firm_id, **params["filter"], limit=1
    )
    if not matches:
        raise ValidationFailed(
            "No account matches this filter, so there is nothing to change.",
            fields={"filter": ["Matches no account."]},
        )
    params = {**params, "dry_run": dry_run}
    if dry_run:
        idempotency_key = None
    if idempotency_key:
        earlier = _job_for_key(staff, idempotency_key)
        if earlier is not None:
            return earlier, False
    job = Job(
        firm_id=staff.firm_id,
        staff_user_id=staff.id,
        kind=KIND,
        params=params,
        idempotency_key=idempotency_key,
        progress_total=len(params.get("account_ids", [])),
    )
    try:
        with db.session.begin_nested():
            db.session.add(job)
            db.session.flush()
    except IntegrityError:  # the same key raced in from a retry: that job is the answer
        earlier = _job_for_key(staff, idempotency_key or "")
        if earlier is None:
            raise
        return earlier, False
    enqueue_job(job.id)
    return job, True


def _job_for_key(staff: StaffUser, key: str) -> Job | None:
    return db.session.scalar(
        select(Job).where(
            Job.firm_id == staff.firm_id, Job.staff_user_id == staff.id, Job.idempotency_key == key
        )
    )


def resolve_targets(firm_id: int, params: dict[str, Any]) -> tuple[list[int], list[dict[str, Any]]]:
    """The accounts to change, in order, and an error item for each id that is none of the firm's."""
    if "filter" in params:
        return account_list.matching_account_ids(firm_id, **params["filter"]), []
    wanted: list[int] = []
    errors: list[dict[str, Any]] = []
    seen: set[int] = set()
    for raw in params["account_ids"]:
        key = parse_id(raw)
        if key is None:
            errors.append(error_item(str(raw), reason=NO_SUCH_ACCOUNT))
        elif key not in seen:
            seen.add(key)
            wanted.append(key)
    found: set[int] = set()
    for start in range(0, len(wanted), 1000):
        found.update(
            db.session.scalars(
                select(Account.id).where(
                    Account.firm_id == firm_id, Account.id.in_(wanted[start : start + 1000])
                )
            )
        )
    errors.extend(error_item(str(key), reason=NO_SUCH_ACCOUNT) for key in wanted if key not in found)
    return [key for key in wanted if key in found], errors


def error_item(
    account_id: str | None, *, reason: str, contact_id: int | None = None, email: str = ""
) -> dict:
    return {
        "account_id": account_id,
        "contact_id": str(contact_id) if contact_id else None,
        "email": email or None,
        "row": None,
        "reason": reason,
    }


def apply_batch(
    firm_id: int,
    account_ids: Sequence[int],
    params: dict[str, Any],
    *,
    staff: StaffUser | None,
) -> BatchOutcome:
    """Apply the request to these whole accounts with set-based statements (in the caller's
    transaction); accounts deleted since the job started are error items."""
    outcome = BatchOutcome()
    rows = list(
        db.session.scalars(
            select(ContactSettings)
            .join(Account, Account.id == ContactSettings.account_id)
            .where(Account.firm_id == firm_id, id_in(ContactSettings.account_id, account_ids))
            .order_by(ContactSettings.account_id, ContactSettings.id)
        )
    )
    existing = set(
        db.session.scalars(
            select(Account.id).where(Account.firm_id == firm_id, id_in(Account.id, account_ids))
        )
    )
    outcome.errors.extend(
        error_item(str(a), reason=NO_SUCH_ACCOUNT) for a in account_ids if a not in existing
    )
    actor = Actor("staff", staff.id, staff.email) if staff else Actor.system("bulk update")
    outcome.report = apply_settings_change(
        rows,
        settings_change(params),
        actor=actor,
        sent_by=staff,
        invite=INVITE_MISSING if params.get("send_invitations") else INVITE_NONE,
        message=params.get("invitation_message", ""),
    )
    changed_ids = set(outcome.report.changed_fields)
    outcome.accounts_changed = len({row.account_id for row in rows if row.id in changed_ids})
    return outcome


def account_errors(account_id: int, reason: str) -> list[dict[str, Any]]:
    """An error item per email of an account whose change failed (it stays untouched)."""
    emails = db.session.execute(
        select(ContactSettings.contact_id, ContactEmail.address)
        .join(ContactEmail, ContactEmail.id == ContactSettings.email_id)
        .where(ContactSettings.account_id == account_id)
    ).all()
    if not emails:
        return [error_item(str(account_id), reason=reason)]
    return [error_item(str(account_id), reason=reason, contact_id=c, email=a) for c, a in emails]


def empty_result(accounts: int) -> dict[str, Any]:
    return {"accounts": accounts, "accounts_changed": 0, **ChangeReport().counts(), "errors": 0}


def add_to_result(result: dict[str, Any], outcome: BatchOutcome) -> dict[str, Any]:
    counts = outcome.report.counts()
    merged = dict(result)
    merged["accounts_changed"] += outcome.accounts_changed
    for key in ("emails", "emails_changed", "invitations_sent", "access_granted", "invitations_revoked"):
        merged[key] += counts[key]
    merged["changed"] = {k: merged["changed"].get(k, 0) + v for k, v in counts["changed"].items()}
    merged["errors"] += len(outcome.errors)
    return merged


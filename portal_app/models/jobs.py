"""Background jobs staff start (bulk updates, imports): progress, result and per-item errors."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal_app.extensions import db
from portal_app.orm import BigId, UTCDateTime, utcnow

JOB_STATES = ("queued", "running", "done", "failed")
JOB_KINDS = ("bulk_contact_settings", "csv_import")


class Job(db.Model):
    """One background job of a firm, resumable: ``cursor`` counts the targets already done, and
    every batch commits its changes together with the cursor, progress, result and errors."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("state in ('queued', 'running', 'done', 'failed')", name="state_known"),
        # A retried POST with the same Idempotency-Key finds the job it started.
        UniqueConstraint("firm_id", "staff_user_id", "idempotency_key"),
        Index("ix_jobs_firm_id_id", "firm_id", "id"),
        Index("ix_jobs_state_heartbeat_at", "state", "heartbeat_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"))
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # What was asked (validated request body); never a secret.
    params: Mapped[dict] = mapped_column(db.JSON, default=dict)
    # The ids the job works through, resolved when it starts (a filter is resolved then).
    targets: Mapped[list | None] = mapped_column(db.JSON)
    # A dry run rolls each batch back; what those batches created (accounts, contact emails, by
    # the names the import matches on) is kept here, so later batches count as a real run would.
    dry_run_seen: Mapped[list | None] = mapped_column(db.JSON)
    cursor: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict] = mapped_column(db.JSON, default=dict)
    errors: Mapped[list] = mapped_column(db.JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

"""Inbox+: what staff hear about (job reports, invitation requests, later synced emails). An item
is addressed to one staff user or to the whole firm; each staff user has their own read state."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.exc import IntegrityError

from portal_app.extensions import db
from portal_app.models import InboxItem, InboxRead, Job, StaffUser
from portal_app.services.errors import NotFound
from portal_app.services.validation import parse_id


def _visible_to(staff: StaffUser) -> ColumnElement[bool]:
    return and_(
        InboxItem.firm_id == staff.firm_id,
        or_(InboxItem.staff_user_id.is_(None), InboxItem.staff_user_id == staff.id),
    )


def _read_by(staff: StaffUser) -> ColumnElement[bool]:
    return exists().where(InboxRead.item_id == InboxItem.id, InboxRead.staff_user_id == staff.id)


def list_items(
    staff: StaffUser, *, unread: bool = False, limit: int = 20, before_id: int | None = None
) -> list[tuple[InboxItem, bool]]:
    """Newest first, with whether this staff user has read each."""
    query = select(InboxItem, _read_by(staff)).where(_visible_to(staff))
    if unread:
        query = query.where(~_read_by(staff))
    if before_id is not None:
        query = query.where(InboxItem.id < before_id)
    rows = db.session.execute(query.order_by(InboxItem.id.desc()).limit(limit)).all()
    return [(item, bool(read)) for item, read in rows]


def get_item(staff: StaffUser, item_id: object) -> InboxItem:
    key = parse_id(item_id)
    item = (
        db.session.scalar(select(InboxItem).where(InboxItem.id == key, _visible_to(staff))) if key else None
    )
    if item is None:
        raise NotFound("No such Inbox+ item.")
    return item


def mark_read(staff: StaffUser, item_id: object) -> InboxItem:
    """Mark read for this staff user only; marking twice is harmless."""
    item = get_item(staff, item_id)
    already = db.session.get(InboxRead, (item.id, staff.id))
    if already is None:
        try:
            with db.session.begin_nested():
                db.session.add(InboxRead(item_id=item.id, staff_user_id=staff.id))
        except IntegrityError:
            pass  # a double click raced us: it is read either way
    return item


def get_job(firm_id: int, job_id: object) -> Job:
    key = parse_id(job_id)
    job = db.session.scalar(select(Job).where(Job.id == key, Job.firm_id == firm_id)) if key else None
    if job is None:
        raise NotFound("No such job.")
    return job


def list_jobs(firm_id: int, *, limit: int = 20, before_id: int | None = None) -> list[Job]:
    query = select(Job).where(Job.firm_id == firm_id)
    if before_id is not None:
        query = query.where(Job.id < before_id)
    return list(db.session.scalars(query.order_by(Job.id.desc()).limit(limit)))

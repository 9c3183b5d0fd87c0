"""What a process of this app can do in the background, in explicit tables: the named jobs, the
kinds of staff job, and the context each email template needs at send time.

The factory installs them (``register_work``), so a web process and a worker, which build the
same app, can do the same jobs; nothing registers itself when imported. A module below the jobs
names the job it needs (``defer("drain_outbox")``) instead of importing it.
"""

from __future__ import annotations

from flask import Flask

from portal_app.jobs import bulk, imports, mail, scans, staff_jobs
from portal_app.mail.outbox import DRAIN_JOB, EmailContext
from portal_app.services import (
    activation,
    client_passwords,
    email_contexts,
    mfa_email,
    scanning,
    staff_users,
)
from portal_app.services import bulk as bulk_service
from portal_app.services import imports as import_service
from portal_app.services.staff_jobs import RUN_JOB

JOBS = {
    DRAIN_JOB: mail.drain_outbox,
    RUN_JOB: staff_jobs.run_job,
    scanning.SCAN_JOB: scans.scan_documents,
}

JOB_KINDS = {
    bulk_service.KIND: bulk.JOB_KIND,
    import_service.KIND: imports.JOB_KIND,
}

EMAIL_CONTEXTS = {
    "invitation": EmailContext(activation.invitation_email_context, prefetch=activation.load_invitations),
    "access_granted": EmailContext(activation.access_granted_context),
    "password_reset": EmailContext(client_passwords.password_reset_context),
    "mfa_code": EmailContext(mfa_email.email_code_context),
    "staff_welcome": EmailContext(staff_users.staff_welcome_context),
    **{
        template: EmailContext(email_contexts.notification_context)
        for template in email_contexts.NOTIFICATION_TEMPLATES
    },
}


def install(app: Flask) -> None:
    app.extensions["portico.jobs"] = JOBS
    app.extensions["portico.job_kinds"] = JOB_KINDS
    app.extensions["portico.email_contexts"] = EMAIL_CONTEXTS

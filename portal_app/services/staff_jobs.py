"""Staff's background jobs, seen from the services that start them: a job row, then its run after
the commit. The runner (``portal_app.jobs.staff_jobs``) is named, not imported: services sit
below the jobs."""

from __future__ import annotations

from rq import Retry

from portal_app.queue import defer

RUN_JOB = "run_staff_job"  # the name of portal_app.jobs.staff_jobs.run_job in the job table
RETRY = Retry(max=3, interval=[10, 60, 300])


def enqueue_job(job_id: int) -> None:
    """Run the job after this transaction commits."""
    defer(RUN_JOB, job_id, retry=RETRY)

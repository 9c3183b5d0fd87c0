"""A client asked for a password reset (R-LOG-9): the worker decides whether anyone is emailed.

The request that asks does the same for every address, known or not, activated or not: it hands
the address to this job and answers (R-SEC-4). Only here, out of the request's time, is the
address looked up and the reset email queued.
"""

from __future__ import annotations

from portal_app.services import client_passwords
from portal_app.transaction import commit


def password_reset_requested(address: str) -> None:
    user = client_passwords.portal_user_for_address(address) if address else None
    if user is None or not user.is_active:
        return
    client_passwords.queue_password_reset(user)
    commit()  # the outbox row, and after it the delivery job

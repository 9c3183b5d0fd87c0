"""Small normalisers shared by the services."""

from __future__ import annotations

import re

from portal_app.services.errors import ValidationFailed

# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is the mail
# server's call; this catches typing mistakes without refusing real addresses.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


def normalise_email(address: str, *, field: str = "email") -> str:
    """Return the address trimmed and lower-cased, or raise ValidationFailed."""
    value = (address or "").strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValidationFailed(
            f"{address!r} is not a valid email address.", fields={field: ["Not a valid email address."]}
        )
    return value

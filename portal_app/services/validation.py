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


_ID = re.compile(r"^[1-9][0-9]{0,17}$")


def parse_id(value: object) -> int | None:
    """Return an opaque id as an int, or None when it cannot be one of ours.

    Ids are decimal strings within a signed 64-bit column; anything else (signs, spaces,
    underscores, 20-digit numbers that would overflow the column) is simply not found.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _ID.match(value):
        return None
    return int(value)


def text_problem(value: str) -> str | None:
    """Why a piece of user text cannot be stored, or None when it can.

    PostgreSQL text cannot hold NUL, and a lone UTF-16 surrogate (valid in JSON's escapes)
    cannot be encoded as UTF-8.
    """
    if "\x00" in value:
        return "Contains a NUL character."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Contains an invalid Unicode character."
    return None


def _zones() -> list[str]:
    from zoneinfo import available_timezones

    return ["UTC"] + sorted(
        tz for tz in available_timezones() if "/" in tz and not tz.startswith(("Etc/", "SystemV/"))
    )


# The IANA time zones people pick (region/city, plus UTC); the portal's profile offers the same.
TIMEZONES = _zones()
_TIMEZONE_SET = frozenset(TIMEZONES)


def check_timezone(value: str, *, field: str = "timezone") -> str:
    """Return an IANA time zone name, or raise ValidationFailed."""
    if value not in _TIMEZONE_SET:
        raise ValidationFailed(
            f"{value!r} is not a time zone.", fields={field: ["An IANA time zone such as Europe/Berlin."]}
        )
    return value

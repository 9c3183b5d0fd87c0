"""Deliver a rendered message: SMTP from MAIL_URL, or the development mail store."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app

from portal_app.models import utcnow


class PermanentDeliveryError(Exception):
    """The server refused the message for good (5xx); retrying would not help."""


def send_message(message: EmailMessage) -> None:
    """Send one message; raises on failure (transient errors are plain exceptions)."""
    url = current_app.config["MAIL_URL"]
    if url is None:
        if not current_app.config["DEVELOPMENT"]:
            raise PermanentDeliveryError("MAIL_URL is not configured")
        store_dev_message(message)
        return
    _send_smtp(url, message)


def _send_smtp(url: str, message: EmailMessage) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"}:
        raise PermanentDeliveryError(f"MAIL_URL scheme must be smtp or smtps, not {parts.scheme!r}")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    host = parts.hostname or "localhost"
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            host, parts.port or 465, timeout=30, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(host, parts.port or 25, timeout=30)
    try:
        if options.get("starttls") in {"1", "true", "yes"}:
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        try:
            client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(500 <= code < 600 for code in codes):
                raise PermanentDeliveryError(f"recipient refused: {exc.recipients}") from exc
            raise
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
            raise
    finally:
        try:
            client.quit()
        except smtplib.SMTPException:
            client.close()


def dev_mail_dir() -> Path:
    return Path(current_app.config["DEV_MAIL_DIR"])


def store_dev_message(message: EmailMessage) -> Path:
    """Keep the message as an .eml file for /dev/mail (development only)."""
    folder = dev_mail_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"{stamp}.eml"
    path.write_bytes(message.as_bytes())
    return path

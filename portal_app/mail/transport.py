"""Deliver rendered messages: SMTP from MAIL_URL over one connection per batch, or the
development mail store."""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app

from portal_app.mail.mime import RenderedEmail
from portal_app.models import utcnow


class PermanentDeliveryError(Exception):
    """The server refused the message for good (5xx); retrying would not help."""


class Mailer:
    """Send many messages over one SMTP connection, reconnecting after a failure.

    ``send`` raises ``PermanentDeliveryError`` for a 5xx refusal (the connection stays usable)
    and any other exception for a transient failure (the connection is dropped and the next
    message opens a new one)."""

    def __init__(self) -> None:
        self.url: str | None = current_app.config["MAIL_URL"]
        self.development: bool = current_app.config["DEVELOPMENT"]
        self._client: smtplib.SMTP | None = None

    def __enter__(self) -> Mailer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def send(self, message: RenderedEmail) -> None:
        if self.url is None:
            if not self.development:
                raise PermanentDeliveryError("MAIL_URL is not configured")
            store_dev_message(message)
            return
        if self._client is None:
            self._client = _connect(self.url)
        try:
            self._client.sendmail(message.sender, [message.recipient], message.data)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(500 <= code < 600 for code in codes):
                raise PermanentDeliveryError(f"recipient refused: {exc.recipients}") from exc
            self._drop()
            raise
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
            self._drop()
            raise
        except Exception:
            self._drop()
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _connect(url: str) -> smtplib.SMTP:
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
    except Exception:
        client.close()
        raise
    return client


def dev_mail_dir() -> Path:
    return Path(current_app.config["DEV_MAIL_DIR"])


def store_dev_message(message: RenderedEmail) -> Path:
    """Keep the message as an .eml file for /dev/mail (development only)."""
    folder = dev_mail_dir()
    folder.mkdir(parents=True, exist_ok=True)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    path = folder / f"{stamp}.eml"
    path.write_bytes(message.data)
    return path

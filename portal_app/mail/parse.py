"""Reading real mail (R-SYN-7): any declared charset, RFC 2047 headers, RFC 2231 file names, inline
images, nested messages, Outlook's winmail.dat (TNEF) and broken MIME, read as far as it goes.

``parse`` never raises on bad input; what it could not read is listed in ``problems``.
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Any

from portal_app.mail import tnef_guard
from portal_app.mail.headers import decode_words, header_text, repair_raw_headers
from portal_app.mail.html import html_to_text

_MSG_ID = re.compile(r"<[^<>\s]{1,250}>")
_SUBJECT_PREFIX = re.compile(r"^\s*(?:re|aw|fwd?|wg|fw|sv|antw|tr)\s*(?:\[\d+\])?\s*:\s*", re.I)
TNEF_TYPES = {"application/ms-tnef", "application/vnd.ms-tnef"}
LATIN1_LABELS = {
    label: "cp1252" for label in ("iso-8859-1", "iso8859-1", "latin1", "latin-1", "us-ascii", "ascii")
}


@dataclass
class Attachment:
    name: str
    content_type: str
    data: bytes


@dataclass
class Parsed:
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    from_address: str = ""
    from_name: str = ""
    to: str = ""
    subject: str = ""
    date: datetime | None = None
    text: str = ""
    html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    budget_note: str = ""


def subject_key(subject: str) -> str:
    """The subject threads are matched on: without Re:/AW:/Fwd:/WG:/FW: prefixes, lower-case."""
    value = " ".join((subject or "").split())
    while True:
        stripped = _SUBJECT_PREFIX.sub("", value, count=1)
        if stripped == value:
            break
        value = stripped
    return value.casefold()[:500]


def _message_ids(value: str) -> list[str]:
    return _MSG_ID.findall(value or "")


def header_block(raw: bytes, limit: int = 256 * 1024) -> bytes:
    """The header block of a raw message: up to the first empty line (or ``limit`` bytes)."""
    head = raw[:limit]
    ends = [i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0]
    return head[: min(ends) + 2] if ends else head


def parse_headers(raw: bytes) -> Parsed:
    """Only what the headers say (sender, ids, subject): enough to decide whether a message is
    kept at all, before any body or attachment is read (R-SYN-3, R-REL-3)."""
    parsed = Parsed()
    try:
        message = BytesHeaderParser().parsebytes(header_block(raw))
    except Exception as exc:  # pragma: no cover - the parser is lenient; belt and braces
        parsed.problems.append(f"unreadable message: {type(exc).__name__}")
        return parsed
    repair_raw_headers(message, 0)
    _read_headers(message, parsed)
    return parsed


def parse(raw: bytes) -> Parsed:
    parsed = Parsed()
    problems = parsed.problems
    try:
        message = message_from_bytes(raw)
    except Exception as exc:  # pragma: no cover - the parser is lenient; belt and braces
        problems.append(f"unreadable message: {type(exc).__name__}")
        return parsed
    if getattr(message, "defects", None):
        problems.extend(sorted({type(d).__name__ for d in message.defects}))
    repair_raw_headers(message, MAX_PARTS)
    _read_headers(message, parsed)
    _walk(message, parsed, referenced=_cid_references(message), budget=_PartBudget())
    if parsed.budget_note:
        problems.append(parsed.budget_note)
    if not parsed.text and parsed.html:
        parsed.text = html_to_text(parsed.html)
    return parsed


def _read_headers(message: Message, parsed: Parsed) -> None:
    problems = parsed.problems
    ids = _message_ids(header_text(message, "Message-ID", problems))
    parsed.message_id = ids[0] if ids else ""
    reply_ids = _message_ids(header_text(message, "In-Reply-To", problems))
    parsed.in_reply_to = reply_ids[0] if reply_ids else ""
    parsed.references = _message_ids(header_text(message, "References", problems))
    name, address = parseaddr(header_text(message, "From", problems))
    name = decode_words(name)
    parsed.from_name, parsed.from_address = name[:200], address.strip().lower()[:254]
    recipients = getaddresses([header_text(message, "To", problems)])
    parsed.to = ", ".join(a for _n, a in recipients if a)[:2000]
    parsed.subject = header_text(message, "Subject", problems)[:500]
    parsed.date = _date(header_text(message, "Date", problems))


# A message's work is bounded whatever it claims (R-REL-3): at most this many MIME parts are
# walked and this many attachments kept; what is left out is said on the message.
MAX_PARTS = 1_000
MAX_ATTACHMENTS = 100


@dataclass
class _PartBudget:
    parts: int = 0
    attachments_left_out: int = 0
    parts_left_out: bool = False


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _cid_references(message: Message) -> set[str]:
    """Content-IDs the HTML bodies point at (cid:…): those parts are inline images."""
    found: set[str] = set()
    for seen, part in enumerate(message.walk()):
        if seen >= MAX_PARTS:
            break
        if part.get_content_type() == "text/html":
            found.update(m.lower() for m in re.findall(r"cid:([^\"'\s>)]+)", _decode_text(part, [])))
    return found


def _walk(part: Message, parsed: Parsed, *, referenced: set[str], budget: _PartBudget) -> None:
    budget.parts += 1
    if budget.parts > MAX_PARTS:
        if not budget.parts_left_out:
            budget.parts_left_out = True
            _note_budget(parsed, budget)
        return
    content_type = part.get_content_type()
    if content_type == "message/rfc822":
        _add_attachment(parsed, budget, lambda: _nested_message(part, parsed))
        return
    if part.is_multipart():
        for child in part.get_payload():  # type: ignore[union-attr]
            if isinstance(child, Message):
                _walk(child, parsed, referenced=referenced, budget=budget)
        return
    disposition = (part.get_content_disposition() or "").lower()
    filename = _filename(part, parsed.problems)
    if content_type in TNEF_TYPES or (filename or "").lower() == "winmail.dat":
        _tnef(part, parsed, budget)
        return
    content_id = (part.get("Content-ID") or "").strip().strip("<>").lower()
    is_body = disposition != "attachment" and not filename
    if is_body and content_type == "text/plain" and not parsed.text:
        parsed.text = _decode_text(part, parsed.problems)
        return
    if is_body and content_type == "text/html" and not parsed.html:
        parsed.html = _decode_text(part, parsed.problems)
        return
    if content_id and content_id in referenced and disposition != "attachment":
        return  # an inline image of the HTML body, not a document
    if is_body and content_type.startswith("text/"):
        # a second text part of a body (some clients split around inline images)
        extra = _decode_text(part, parsed.problems)
        if content_type == "text/plain":
            parsed.text += "\n" + extra
        return
    if len(parsed.attachments) >= MAX_ATTACHMENTS:
        budget.attachments_left_out += 1
        _note_budget(parsed, budget)
        return  # not even decoded
    data = _payload(part, parsed.problems)
    if data is None:
        return
    parsed.attachments.append(
        Attachment(name=safe_filename(filename, content_type), content_type=content_type, data=data)
    )


def _add_attachment(parsed: Parsed, budget: _PartBudget, add: Any) -> None:
    if len(parsed.attachments) >= MAX_ATTACHMENTS:
        budget.attachments_left_out += 1
        _note_budget(parsed, budget)
        return
    add()


def _note_budget(parsed: Parsed, budget: _PartBudget) -> None:
    notes = []
    if budget.attachments_left_out:
        notes.append(
            f"{budget.attachments_left_out} more attachments were not kept "
            f"(at most {MAX_ATTACHMENTS} per message)"
        )
    if budget.parts_left_out:
        notes.append(f"only the first {MAX_PARTS} MIME parts were read")
    parsed.budget_note = "; ".join(notes)


def _filename(part: Message, problems: list[str]) -> str | None:
    try:
        name = part.get_filename()  # RFC 2231 decoded here
    except Exception as exc:
        problems.append(f"attachment name unreadable: {type(exc).__name__}")
        return None
    return decode_words(name) if name else name  # RFC 2047, as Outlook and Thunderbird send


def _payload(part: Message, problems: list[str]) -> bytes | None:
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:
        problems.append(f"attachment unreadable: {type(exc).__name__}")
        return None
    if data is None:
        return b""
    return data if isinstance(data, bytes) else str(data).encode()


def _decode_text(part: Message, problems: list[str]) -> str:
    """The text in its declared charset; an unknown or wrong charset falls back to UTF-8, then
    Windows-1252, never to an error."""
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return str(part.get_payload() or "")
    charset = (part.get_content_charset() or "utf-8").lower()
    # as browsers do (WHATWG Encoding): mail labelled Latin-1 or ASCII is Windows-1252 in practice
    # (the € sign, curly quotes), which Latin-1 would turn into control characters
    charset = LATIN1_LABELS.get(charset, charset)
    for candidate in (charset, "utf-8", "cp1252"):
        try:
            return raw.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    problems.append(f"text in charset {charset} read with replacements")
    return raw.decode("utf-8", errors="replace")


def _nested_message(part: Message, parsed: Parsed) -> None:
    """A forwarded message travels on as a .eml file named after its subject."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    try:
        data = inner.as_bytes() if isinstance(inner, Message) else _payload(part, parsed.problems)
    except Exception as exc:
        parsed.problems.append(f"attached message unreadable: {type(exc).__name__}")
        return
    subject = ""
    if isinstance(inner, Message):
        subject = header_text(inner, "Subject", parsed.problems)
    name = safe_filename(f"{subject or 'Forwarded message'}.eml", "message/rfc822")
    parsed.attachments.append(Attachment(name=name, content_type="message/rfc822", data=data or b""))


def _tnef(part: Message, parsed: Parsed, budget: _PartBudget) -> None:
    """Outlook's winmail.dat: its files become attachments; its body fills a missing one. A
    file that states more than it holds is kept as it came, unopened (``tnef_guard``)."""
    import tnefparse

    data = _payload(part, parsed.problems) or b""
    try:
        tnef_guard.check(data)
    except tnef_guard.Refused as exc:
        parsed.problems.append(f"winmail.dat not opened: {exc}")
        _add_attachment(
            parsed,
            budget,
            lambda: parsed.attachments.append(
                Attachment(name="winmail.dat", content_type="application/ms-tnef", data=data)
            ),
        )
        return
    try:
        tnef = tnefparse.TNEF(data, do_checksum=False)
    except Exception as exc:  # not TNEF after all: keep the file as it came
        parsed.problems.append(f"winmail.dat unreadable: {type(exc).__name__}")
        parsed.attachments.append(
            Attachment(name="winmail.dat", content_type="application/ms-tnef", data=data)
        )
        return
    for item in tnef.attachments:
        if len(parsed.attachments) >= MAX_ATTACHMENTS:
            budget.attachments_left_out += 1
            _note_budget(parsed, budget)
            continue
        try:
            name = item.long_filename() or item.name
        except Exception:
            name = getattr(item, "name", "") or ""
        if isinstance(name, bytes):
            name = name.decode("utf-8", errors="replace")
        content_type = mimetypes.guess_type(name or "")[0] or "application/octet-stream"
        parsed.attachments.append(
            Attachment(
                name=safe_filename(name, content_type), content_type=content_type, data=item.data or b""
            )
        )
    html = getattr(tnef, "htmlbody", None)
    if html and not parsed.html:
        parsed.html = html.decode("utf-8", "replace") if isinstance(html, bytes) else str(html)
    body = getattr(tnef, "body", None)
    if body and not parsed.text:
        parsed.text = body.decode("cp1252", "replace") if isinstance(body, bytes) else str(body)


def safe_filename(name: str | None, content_type: str = "application/octet-stream") -> str:
    """A file name fit to show and to put in Content-Disposition: no path, no control
    characters, at most 255 bytes in UTF-8 (extension kept, no character cut in half)."""
    value = unicodedata.normalize("NFC", name or "")
    value = value.replace("\\", "/").rsplit("/", 1)[-1]
    value = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C").strip().strip(".")
    if not value:
        value = "attachment" + (mimetypes.guess_extension(content_type) or "")
    if len(value.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = value.rpartition(".")
        if dot and stem and len(ext.encode()) < 20:
            value = _cut_utf8(stem, MAX_NAME_BYTES - 1 - len(ext.encode())) + dot + ext
        else:
            value = _cut_utf8(value, MAX_NAME_BYTES)
    return value


MAX_NAME_BYTES = 255  # what file systems and the SPEC allow: bytes, not characters


def _cut_utf8(value: str, limit: int) -> str:
    """The longest start of ``value`` that is at most ``limit`` bytes in UTF-8, whole characters."""
    return value.encode()[:limit].decode("utf-8", errors="ignore")

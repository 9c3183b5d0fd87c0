"""Serialise Portico's one message shape — multipart/alternative with a UTF-8 text and HTML
part — straight to the bytes SMTP sends.

The stdlib's `email` generator re-folds and re-encodes every header of every message and cost
more per email than rendering its templates; this writes the same structure in a few string
operations. Headers that are not ASCII are RFC 2047-encoded once, bodies are quoted-printable
(readable in any client, safe for 7-bit relays), lines end in CRLF.
"""

from __future__ import annotations

import binascii
import secrets
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, parseaddr


@dataclass(frozen=True)
class RenderedEmail:
    """One message ready for SMTP: envelope addresses and the message bytes."""

    sender: str
    recipient: str
    data: bytes


def header_value(value: str) -> str:
    """A free-text header (Subject): as it is when ASCII, else RFC 2047 encoded-words."""
    value = " ".join(value.split())  # no CR/LF can reach the header block
    return value if value.isascii() else Header(value, "utf-8").encode(linesep="\r\n")


def address_value(value: str) -> str:
    """An address header: the display name RFC 2047-encoded when it is not ASCII."""
    value = " ".join(value.split())
    if value.isascii():
        return value
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8")


def _quoted_printable(text: str) -> bytes:
    body = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(body, istext=True).replace(b"\n", b"\r\n")


def build_alternative(headers: list[tuple[str, str]], text: str, html: str) -> bytes:
    """The whole message: ``headers`` (already encoded values), then the two parts."""
    boundary = "=_portico_" + secrets.token_hex(12)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    head += f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
    part = 'Content-Type: text/{kind}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
    delimiter = f"--{boundary}\r\n".encode()
    return b"".join(
        (
            head.encode("ascii"),
            delimiter,
            part.format(kind="plain").encode(),
            _quoted_printable(text),
            b"\r\n",
            delimiter,
            part.format(kind="html").encode(),
            _quoted_printable(html),
            f"\r\n--{boundary}--\r\n".encode(),
        )
    )

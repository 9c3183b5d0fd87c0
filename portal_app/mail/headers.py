"""Header values as text (R-SYN-7): RFC 2047 encoded-words, and raw 8-bit UTF-8 (RFC 6532) as
Apple Mail and others write it, read from the compat32 header list without a second parse."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message


def decode_words(value: str) -> str:
    """RFC 2047 encoded-words (=?utf-8?Q?...?=) to text; what cannot be decoded stays as it is."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, HeaderParseError):
        return value


def _raw_utf8(value: str) -> str:
    """A header value with raw 8-bit bytes (RFC 6532: Apple Mail and others write UTF-8 names
    and subjects unencoded) comes out of the bytes parser as surrogate escapes; these are its
    bytes read as UTF-8, or as Windows-1252 when they are not UTF-8."""
    data = value.encode("ascii", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def repair_raw_headers(message: Message, parts: int) -> None:
    """Give raw 8-bit header values of the message and its first ``parts`` parts their text, so
    ``get`` and ``get_filename`` see ``ciële.txt``, not ``ci\ufffd\ufffdle.txt``. Only values
    that are not ASCII are touched (``isascii`` is a C scan); this reaches into compat32's
    header list, the one place the raw value is kept."""
    for count, part in enumerate(message.walk()):
        if count > parts:
            break
        headers = part._headers  # noqa: SLF001 - compat32 keeps (name, raw value) pairs here
        if all(isinstance(v, str) and v.isascii() for _, v in headers):
            continue
        part._headers = [  # noqa: SLF001
            (name, _raw_utf8(value) if isinstance(value, str) and not value.isascii() else value)
            for name, value in headers
        ]


def header_text(message: Message, name: str, problems: list[str]) -> str:
    """One header as text. The message is parsed with the compat32 policy, which keeps headers
    as they came (the modern policy's header objects cost more than the whole parse); RFC 2047
    is decoded here."""
    value = message.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):  # an undecodable header comes back as a Header object
        try:
            value = str(make_header(decode_header(value)))
        except Exception as exc:
            problems.append(f"header {name} unreadable: {type(exc).__name__}")
            value = str(value)
    return " ".join(decode_words(" ".join(value.split())).split())

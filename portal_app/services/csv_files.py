"""Import files as firms have them (R-IMP-5): checked when uploaded, kept under DOCUMENTS_DIR by
their SHA-256 (written atomically), and read back by the worker row by row.

UTF-8 with or without a BOM, else Windows-1252 (what Excel on Windows saves); the delimiter
(`,`, `;` or tab) is the one the header line uses most; CRLF or LF; quoted fields with newlines.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from portal_app.files import blob_path, store_blob
from portal_app.services.errors import DomainError, ValidationFailed

MAX_BYTES = 50 * 1024 * 1024
MAX_ROWS = 100_000
DELIMITERS = (",", ";", "\t")
# The columns of R-IMP-3, in the order of the sample file; names are matched case-insensitively.
COLUMNS = (
    "account_name",
    "external_id",
    "account_type",
    "company_name",
    "company_address",
    "tags",
    "first_name",
    "middle_name",
    "last_name",
    "email",
    "email_label",
    "phone",
    "login",
    "notify",
    "email_sync",
    "signatory",
    "send_invitation",
)
REQUIRED = ("account_name", "email")
IGNORED = ("error",)  # the column errors.csv adds, so a fixed file can be uploaded again


class FileTooLarge(DomainError):
    status = 413
    code = "file_too_large"


@dataclass(frozen=True)
class CsvFile:
    """An accepted upload: where it is and how to read it."""

    sha256: str
    encoding: str  # "utf-8-sig" or "cp1252"
    delimiter: str
    header: list[str]  # as written in the file
    rows: int  # data rows (the header is row 1)


def refuse(message: str, **fields: list[str]) -> ValidationFailed:
    return ValidationFailed(message, fields=fields or {"file": [message]})


def inspect(data: bytes) -> CsvFile:
    """Check an upload and keep it; raise a clear 4xx for anything that is not an import file."""
    if len(data) > MAX_BYTES:
        raise FileTooLarge(f"The file is over {MAX_BYTES // (1024 * 1024)} MB; split it into smaller files.")
    if not data.strip():
        raise refuse("The file is empty.")
    if b"\x00" in data[:65536]:
        raise refuse("This is not a CSV file (it holds binary data). Save it from Excel as CSV.")
    encoding = "utf-8-sig"
    try:
        codecs.decode(data, "utf-8-sig")
    except UnicodeDecodeError:
        encoding = "cp1252"  # what Excel on Windows saves
        try:
            codecs.decode(data, "cp1252")
        except UnicodeDecodeError:  # five bytes have no Windows-1252 character
            raise refuse(
                "The file is neither UTF-8 nor Windows-1252 text. Save it from Excel as CSV."
            ) from None
    first_line = _text(data, encoding).readline()
    delimiter = max(DELIMITERS, key=first_line.count)
    header, count = _count_rows(data, encoding, delimiter)
    columns = [name.strip().lower() for name in header]
    unknown = [name for name, key in zip(header, columns, strict=True) if key not in COLUMNS + IGNORED]
    missing = [name for name in REQUIRED if name not in columns]
    if missing and (not unknown or not set(columns) & set(COLUMNS)):
        raise refuse(
            "The first row must be the header, with at least account_name and email. "
            f"Columns are: {', '.join(COLUMNS)}.",
            file=[f"Missing column(s): {', '.join(missing)}."],
        )
    if unknown:
        raise refuse(
            f"Unknown column(s): {', '.join(repr(u) for u in unknown)}. Known columns: {', '.join(COLUMNS)}.",
            file=[f"Unknown column {u!r}." for u in unknown],
        )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise refuse(f"Column(s) given twice: {', '.join(duplicates)}.")
    if count == 0:
        raise refuse("The file has a header but no rows.")
    if count > MAX_ROWS:
        raise FileTooLarge(f"The file has {count:,} rows; at most {MAX_ROWS:,} per import. Split it.")
    sha256 = hashlib.sha256(data).hexdigest()
    _store(sha256, data)
    return CsvFile(sha256=sha256, encoding=encoding, delimiter=delimiter, header=header, rows=count)


def _text(data: bytes, encoding: str) -> IO[str]:
    return io.TextIOWrapper(io.BytesIO(data), encoding=encoding, newline="")


def _count_rows(data: bytes, encoding: str, delimiter: str) -> tuple[list[str], int]:
    """The header and the number of data rows (blank lines do not count); streams the file."""
    reader = csv.reader(_text(data, encoding), delimiter=delimiter, strict=True)
    try:
        header = next(reader, [])
        count = 0
        for row in reader:
            if any(cell.strip() for cell in row):
                count += 1
                if count > MAX_ROWS:
                    break
    except csv.Error as exc:
        raise refuse(f"The file is not valid CSV near line {reader.line_num}: {exc}.") from exc
    return header, count


def path_for(sha256: str) -> Path:
    return blob_path("imports", sha256, ".csv")


def _store(sha256: str, data: bytes) -> None:
    """Write once under its digest, atomically."""
    store_blob("imports", data, ".csv")


def read_rows(upload: CsvFile, *, skip: int = 0) -> Iterator[tuple[int, list[str]]]:
    """(row number as the spreadsheet shows it, cells) for each data row after the first
    ``skip``; blank lines are passed over. Streams from disk: memory does not grow with the file."""
    with open(path_for(upload.sha256), encoding=upload.encoding, newline="") as text:
        reader = csv.reader(text, delimiter=upload.delimiter, strict=True)
        next(reader, None)
        seen = 0
        for number, row in enumerate(reader, start=2):  # the header is row 1, as in Excel
            if not any(cell.strip() for cell in row):
                continue
            seen += 1
            if seen > skip:
                yield number, row

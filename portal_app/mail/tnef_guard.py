"""A linear check of Outlook's winmail.dat (TNEF) before tnefparse reads it (R-REL-3, R-SYN-7).

tnefparse trusts the counts a file states: a 21-byte file claiming a million MAPI properties
loops a million times, and a file of many tiny records copies the rest of the file for each one
(quadratic). This walk reads every count the way tnefparse will, checks it against the bytes that
are left, and stops at a budget of records and values; a file it refuses is kept as the
``winmail.dat`` it came as, unopened. The walk touches each byte at most once and copies nothing.
"""

from __future__ import annotations

import struct

SIGNATURE = 0x223E9F78
ATT_MAPI_PROPS = 0x9003
ATT_RECIPIENT_TABLE = 0x9004
ATT_ATTACHMENT = 0x9005

MAX_RECORDS = 5_000  # a real winmail.dat has tens; one per attachment field plus the message's
MAX_VALUES = 50_000  # MAPI values in the whole file
# tnefparse copies the rest of the file for every record it reads: the sum of those copies is
# bounded too (2 GiB is ~0.3 s of memcpy; a real 25 MB file with 40 records copies ~1 GB)
MAX_COPIED_BYTES = 2 * 1024**3
MIN_RECORD = 12  # tnefparse's MIN_OBJ_SIZE: 9 header bytes, 2 checksum bytes, and some data

GUID_EXISTS_FLAG = 0x8000
MULTI_VALUE_FLAG = 0x1000
FIXED_SIZES = {
    0x0002: 2,  # short
    0x000B: 2,  # boolean
    0x0003: 4,  # int
    0x0004: 4,  # float
    0x000A: 4,  # error
    0x0005: 8,  # double
    0x0007: 8,  # apptime
    0x0006: 8,  # currency
    0x0014: 8,  # int8byte
    0x0040: 8,  # systime
    0x0048: 16,  # clsid
}
VARIABLE_TYPES = {0x001E, 0x001F, 0x000D, 0x0102, 0x0000}  # string, unicode, object, binary, unspecified


class Refused(ValueError):
    """The file states more than it holds, or more than any real one does."""


def _u16(data: bytes, at: int) -> int:
    return struct.unpack_from("<H", data, at)[0]


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from("<I", data, at)[0]


class _Budget:
    def __init__(self) -> None:
        self.values = 0

    def spend(self, n: int) -> None:
        self.values += n
        if self.values > MAX_VALUES:
            raise Refused(f"more than {MAX_VALUES} MAPI values")


def check(data: bytes) -> None:
    """Raise ``Refused`` unless tnefparse can read ``data`` in time linear in its size."""
    if len(data) < 6 or _u32(data, 0) != SIGNATURE:
        return  # not TNEF: tnefparse refuses it at once by itself
    budget = _Budget()
    offset, records, end, copied = 6, 0, len(data), 0
    while offset + MIN_RECORD < end:
        records += 1
        copied += end - offset
        if records > MAX_RECORDS:
            raise Refused(f"more than {MAX_RECORDS} records")
        if copied > MAX_COPIED_BYTES:
            raise Refused("too many records for its size")
        name = _u16(data, offset + 1)
        length = _u32(data, offset + 5)
        body_start, body_end = offset + 9, offset + 9 + length
        if body_end + 2 > end:
            raise Refused("a record is longer than the file")
        if name in (ATT_MAPI_PROPS, ATT_ATTACHMENT):
            _check_mapi(data, body_start, body_end, budget)
        elif name == ATT_RECIPIENT_TABLE:
            rows = _u32(data, body_start) if length >= 4 else 0
            if rows * 4 > length:
                raise Refused("the recipient table states more rows than it holds")
            at = body_start + 4
            for _ in range(rows):
                at = _check_mapi(data, at, body_end, budget)
        offset = body_end + 2


def _need(at: int, n: int, end: int) -> None:
    if at + n > end:
        raise Refused("a MAPI property is longer than its record")


def _check_mapi(data: bytes, start: int, end: int, budget: _Budget) -> int:
    """Walk one MAPI property list as tnefparse's ``decode_mapi`` will; return where it ends."""
    if start + 4 > end:
        return end
    count = _u32(data, start)
    at = start + 4
    if count * 4 > end - at:  # every property takes at least its 4-byte type and name
        raise Refused("a MAPI list states more properties than it holds")
    budget.spend(count)
    for _ in range(count):
        _need(at, 4, end)
        kind, name = _u16(data, at), _u16(data, at + 2)
        at += 4
        if name >= GUID_EXISTS_FLAG:
            _need(at, 20, end)
            at += 16
            named_by = _u32(data, at)
            at += 4
            _need(at, 4, end)
            if named_by == 0:
                at += 4
            else:
                size = _u32(data, at)
                at += 4 + size + (-size % 4)
                _need(at, 0, end)
        values = 1
        multi = bool(kind & MULTI_VALUE_FLAG)
        if multi:
            kind ^= MULTI_VALUE_FLAG
            _need(at, 4, end)
            values = _u32(data, at)
            at += 4
            if values * 2 > end - at:
                raise Refused("a multi-value property states more values than it holds")
        budget.spend(values)
        for _ in range(values):
            if kind in FIXED_SIZES:
                at += FIXED_SIZES[kind]
                _need(at, 0, end)
            elif kind in VARIABLE_TYPES:
                items = 1
                if not multi:
                    _need(at, 4, end)
                    items = _u32(data, at)
                    at += 4
                    if items * 4 > end - at:
                        raise Refused("a MAPI value states more items than it holds")
                budget.spend(items)
                for _ in range(items):
                    _need(at, 4, end)
                    size = _u32(data, at)
                    at += 4 + size + (-size % 4)
                    _need(at, 0, end)
            else:
                return end  # tnefparse stops at an unknown type (it raises and catches)
        if values % 2 and kind in (0x0002, 0x000B):
            at += 2
    return at

"""clamd's INSTREAM protocol (clamd(8)), spoken over TCP or a Unix socket.

The stream is sent in chunks, each prefixed with its length as a 4-byte big-endian integer, and
ended with a zero-length chunk; clamd answers ``stream: OK``, ``stream: <signature> FOUND`` or
``... ERROR`` (``INSTREAM size limit exceeded`` when a file is over its ``StreamMaxLength``).
About forty lines, so no client library: the ones on PyPI are unmaintained (python-clamd's last
release is from 2017) and this is the whole protocol.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

CHUNK = 256 * 1024
TIMEOUT = 120.0  # a large file takes clamd a while


class ScannerUnavailable(Exception):
    """clamd could not be reached or gave no verdict: the file stays pending (fail closed)."""


@dataclass(frozen=True)
class Verdict:
    clean: bool
    signature: str | None  # what was found, when not clean


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(TIMEOUT)
            sock.connect(parts.path)
        elif parts.scheme == "tcp":
            sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 3310), timeout=10)
            sock.settimeout(TIMEOUT)
        else:
            raise ScannerUnavailable(f"CLAMAV_URL must be tcp://host:port or unix:///path, not {url!r}")
    except OSError as exc:
        raise ScannerUnavailable(f"clamd at {url} cannot be reached: {exc}") from exc
    return sock


def scan_file(url: str, path: Path) -> Verdict:
    """Send the file to clamd and return its verdict; ``ScannerUnavailable`` when there is none."""
    with _connect(url) as sock:
        try:
            sock.sendall(b"zINSTREAM\0")
            with path.open("rb") as handle:
                while block := handle.read(CHUNK):
                    sock.sendall(struct.pack("!L", len(block)) + block)
            sock.sendall(struct.pack("!L", 0))
            reply = b""
            while not reply.endswith(b"\0") and (data := sock.recv(4096)):
                reply += data
        except OSError as exc:
            raise ScannerUnavailable(f"clamd at {url} stopped answering: {exc}") from exc
    answer = reply.rstrip(b"\0").decode("utf-8", "replace").strip()
    if answer.endswith(": OK"):
        return Verdict(True, None)
    if answer.endswith(" FOUND"):
        return Verdict(False, answer.split(": ", 1)[-1][: -len(" FOUND")].strip()[:200])
    raise ScannerUnavailable(f"clamd gave no verdict: {answer or 'no answer'}")


def ping(url: str) -> bool:
    try:
        with _connect(url) as sock:
            sock.sendall(b"zPING\0")
            return sock.recv(16).startswith(b"PONG")
    except (OSError, ScannerUnavailable):
        return False

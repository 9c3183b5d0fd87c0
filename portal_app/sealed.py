"""Secrets the server must read back (TOTP keys, the firm's inbound secret), encrypted at rest.

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived from SECRET_KEY. A
MultiFernet over SECRET_KEY and SECRET_KEY_FALLBACKS decrypts what older keys sealed, so a key
rotation locks nobody out; ``reseal`` moves a value to the current key.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


def derived_key(secret_key: str) -> bytes:
    digest = hashlib.sha256(b"portico.sealed.v1\x00" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _fernet() -> MultiFernet:
    keys = [current_app.config["SECRET_KEY"], *reversed(current_app.config.get("SECRET_KEY_FALLBACKS", []))]
    return MultiFernet([Fernet(derived_key(key)) for key in keys])


def seal(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def unseal(stored: str | None) -> str | None:
    """The value, or None when there is none or no configured key opens it."""
    if not stored:
        return None
    try:
        return _fernet().decrypt(stored.encode()).decode()
    except InvalidToken:
        return None


def reseal(stored: str) -> str:
    return _fernet().rotate(stored.encode()).decode()

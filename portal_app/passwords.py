"""Password hashing with argon2id (argon2-cffi defaults) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import gettext as _

_hasher = PasswordHasher()
# Verified against when the user is unknown, so both paths cost one argon2 verification.
_DUMMY_HASH = _hasher.hash("portico-timing-equaliser")

MIN_LENGTH = 12
MAX_LENGTH = 256


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password in constant-ish time, also when there is no hash to check."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


# The most common passwords that pass the length rule (from public breach corpora), plus
# patterns a person reaches for when told "at least 12 characters". No composition rules.
COMMON_PASSWORDS = frozenset(
    """
    123456789012 1234567890123 12345678901234 123456789123 111111111111 000000000000
    password1234 password12345 password123456 passwordpassword password1234! password!234
    qwertyuiop12 qwertyuiopas qwertyuiop123 1q2w3e4r5t6y 1qaz2wsx3edc qazwsxedcrfv
    iloveyou1234 iloveyou12345 welcome12345 welcome123456 letmein12345 changeme1234
    administrator admin1234567 abc123456789 abcdefghijkl abcdefghijklm aaaaaaaaaaaa
    football1234 baseball1234 sunshine1234 princess1234 monkey123456 dragon123456
    trustno1trustno1 superman1234 starwars1234 whatever1234 passw0rd1234 p@ssw0rd1234
    correcthorse correcthorsebatterystaple mypassword123 mypassword1234 secretpassword
    portalpassword clientportal12 accounting123 taxreturn1234 1234qwerasdf asdfghjkl123
    zaq12wsxcde3 qwerty123456 qwertyqwerty q1w2e3r4t5y6 987654321098 121212121212
    """.split()
)


def password_problems(password: str, *, personal: tuple[str, ...] = ()) -> list[str]:
    """What is wrong with a new password (R-LOG-10); empty when it is fine."""
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(_("Use at least %(num)d characters.", num=MIN_LENGTH))
    elif len(password) > MAX_LENGTH:
        problems.append(_("Use at most %(num)d characters.", num=MAX_LENGTH))
    folded = password.casefold()
    if len(password) >= MIN_LENGTH and (
        folded in COMMON_PASSWORDS or len(set(folded)) <= 2 or folded.strip("0123456789") == ""
    ):
        problems.append(_("This password is too common. Try a few unrelated words."))
    elif any(word and len(word) >= 4 and word.casefold() == folded for word in personal):
        problems.append(_("Do not use your email address as your password."))
    return problems

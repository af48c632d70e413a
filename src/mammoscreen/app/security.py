"""Passwords, tokens and login rate limiting.

Passwords are hashed with Argon2id (memory-hard; argon2-cffi's RFC 9106 low-memory profile: 64 MiB,
3 passes). Session cookies and CSRF tokens are 256-bit random tokens; the database stores only the
SHA-256 of a session token, so a copy of the database does not let anyone log in.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import StudyError

_HASHER = PasswordHasher()  # Argon2id, m=64 MiB, t=3, p=4
# A hash to verify against when the name is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))

READER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256


def check_reader_name(name: str) -> str:
    """Reader names appear in exports (iMRMC IDs, CSV columns): letters, digits, '_', '.', '-' only."""
    if not READER_NAME.match(name or ""):
        raise StudyError(f"reader name {name!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
                         "starting with a letter or digit (it becomes an ID in the exported files)")
    return name


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; constant work whether or not the account exists (hash None)."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_problem(password: str, name: str) -> str | None:
    """Why a new password is not acceptable (None when it is)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"use at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"use at most {MAX_PASSWORD_LENGTH} characters"
    if name.lower() in password.lower():
        return "do not include your user name"
    if len(set(password)) < 5:
        return "use more different characters"
    return None


def one_time_password() -> str:
    """A random password to hand to a reader once (about 100 bits, no ambiguous characters)."""
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4)]
    return "-".join(groups)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def tokens_equal(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class RateLimit:
    """At most ``per_name`` failed logins per account and ``per_ip`` per address within ``window``."""

    per_name: int = 5
    per_ip: int = 20
    window: timedelta = timedelta(minutes=15)

    def blocked(self, failures_for_name: int, failures_from_ip: int) -> bool:
        return failures_for_name >= self.per_name or failures_from_ip >= self.per_ip

    def since(self, now: datetime) -> datetime:
        return now - self.window

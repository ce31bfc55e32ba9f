"""Who may do what: API tokens, roles and environment scopes.

A token reads ``sr_<id>_<secret>``. Only a SHA-256 of the secret part is stored (the
secret is 256 random bits, so a slow hash adds nothing); the id finds the record and
the hash is compared in constant time. Roles are ordered: each one can do everything
the one before it can.

| role | may |
|---|---|
| reader | list, read definitions and masked values, history, diff |
| opener | + open, run, decrypt (plaintext) |
| editor | + write, tag, roll back, clone |
| admin  | + delete environments, manage tokens, read the audit log |

Scopes are ``project/env`` globs (``aphiria.com/*``); a token without scopes reaches
every environment.
"""

from __future__ import annotations

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "Principal",
    "hash_secret",
    "new_token",
    "parse_duration",
    "parse_token",
    "role_allows",
]

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase

from strongroom.errors import InvalidInputError

ROLES = ("reader", "opener", "editor", "admin")
#: The lowest role that grants each permission.
PERMISSIONS = {
    "read": "reader",
    "open": "opener",
    "write": "editor",
    "delete": "admin",
    "admin": "admin",
}
_TOKEN = re.compile(r"sr_([a-z2-7]{16})_([A-Za-z0-9_-]{43})")
_DURATION = re.compile(r"([0-9]{1,12})\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def role_allows(role: str, permission: str) -> bool:
    needed = PERMISSIONS[permission]
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_token() -> tuple[str, str, str]:
    """A fresh token: (token id, the whole token to hand out once, the hash to store)."""
    token_id = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")
    return token_id, f"sr_{token_id}_{secret}", hash_secret(secret)


def parse_token(text: str) -> tuple[str, str] | None:
    """(token id, secret part) of a well-formed token, else ``None``."""
    match = _TOKEN.fullmatch(text.strip())
    return (match.group(1), match.group(2)) if match else None


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise InvalidInputError(f"cannot read the duration {text!r}", hint="use for example 90d, 12h or 2w")
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise InvalidInputError(f"the duration {text!r} is too long", hint="use at most a few years") from None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a token's name and rights, or the local user (``local=True``, all rights)."""

    name: str
    role: str
    scopes: tuple[str, ...] = ()
    token_id: str | None = None
    local: bool = False

    def reaches(self, env: str) -> bool:
        return not self.scopes or any(fnmatchcase(env, scope) for scope in self.scopes)

    def may(self, permission: str, env: str | None = None) -> bool:
        if self.local:
            return True
        if not role_allows(self.role, permission):
            return False
        return env is None or self.reaches(env)

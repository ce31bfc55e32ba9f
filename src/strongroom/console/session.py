"""The console's sign-in session: a sealed cookie, no server-side table.

The cookie holds the Strongroom token the person signed in with, when the session started,
when it was last used, and a CSRF token, as JSON sealed with AES-GCM (a random 96-bit nonce
per cookie; the cookie name is bound as associated data). Nothing in it can be read or
changed without the key. Every request opens it, refuses it past the idle or absolute
limit, and authenticates the token again (so a revoked token signs the session out at once).

The key is ``STRONGROOM_CONSOLE_SESSION_KEY`` (or ``_FILE``: 32 bytes, base64) when set;
otherwise it is derived (HKDF-SHA256) from the store's audit key, so every worker and every
server over the same store opens the same cookies, and a restart signs nobody out.
"""

from __future__ import annotations

__all__ = ["COOKIE_NAME", "Session", "SessionCodec", "derive_session_key", "parse_session_key"]

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass, replace

from strongroom.errors import InvalidInputError

COOKIE_NAME = "strongroom_console"
_AAD = b"strongroom console session v1:" + COOKIE_NAME.encode()
_HKDF_INFO = b"strongroom console session key v1"


@dataclass(frozen=True, slots=True)
class Session:
    """What the sealed cookie holds. ``token`` is empty before sign-in (only the CSRF token is set)."""

    token: str
    csrf: str
    started: float
    last_seen: float

    def __repr__(self) -> str:
        return f"Session(signed_in={bool(self.token)}, started={self.started}, last_seen={self.last_seen})"

    @classmethod
    def new(cls, token: str, now: float) -> Session:
        return cls(token=token, csrf=secrets.token_urlsafe(32), started=now, last_seen=now)

    def touched(self, now: float) -> Session:
        return replace(self, last_seen=now)


def derive_session_key(audit_key: bytes) -> bytes:
    """The cookie key derived from the store's audit key (domain-separated by HKDF's info)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(audit_key)


def parse_session_key(text: str) -> bytes:
    """``STRONGROOM_CONSOLE_SESSION_KEY``: 32 bytes, base64 (``openssl rand -base64 32``)."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise InvalidInputError(
            "STRONGROOM_CONSOLE_SESSION_KEY must be 32 bytes in base64", hint="make one with: openssl rand -base64 32"
        )
    return key


class SessionCodec:
    """Seals and opens session cookies with one AES-GCM key."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SessionCodec()"

    def seal(self, session: Session) -> str:
        data = json.dumps(
            {"t": session.token, "c": session.csrf, "s": session.started, "l": session.last_seen},
            separators=(",", ":"),
        ).encode()
        nonce = os.urandom(12)
        return base64.urlsafe_b64encode(nonce + self._aead.encrypt(nonce, data, _AAD)).decode("ascii").rstrip("=")

    def open(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``, or ``None`` when it is absent, forged, altered or malformed."""
        from cryptography.exceptions import InvalidTag

        if not cookie or len(cookie) > 4096:
            return None
        try:
            raw = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
            data = json.loads(self._aead.decrypt(raw[:12], raw[12:], _AAD))
            return Session(
                token=str(data["t"]), csrf=str(data["c"]), started=float(data["s"]), last_seen=float(data["l"])
            )
        except (InvalidTag, binascii.Error, ValueError, KeyError, TypeError):
            return None

"""The ciphertext format: secret value tokens and wrapped data keys (AES-256-GCM, version 1)."""

from __future__ import annotations

__all__ = [
    "DATA_KEY_AAD_PREFIX",
    "KEY_BYTES",
    "NONCE_BYTES",
    "SECRET_AAD_PREFIX",
    "VERSION",
    "decrypt_secret",
    "encrypt_secret",
    "key_id",
    "new_data_key",
    "unwrap_data_key",
    "wrap_data_key",
]

import base64
import hashlib
import hmac
import os

from strongroom.errors import DecryptionError, InvalidInputError
from strongroom.model import EnvRef

#: The first byte of every token and wrapped key in this format.
VERSION = b"\x01"
#: AES-256: every data key and master key is this many bytes.
KEY_BYTES = 32
#: AES-GCM nonce length.
NONCE_BYTES = 12
#: AES-GCM authentication tag length.
_TAG_BYTES = 16
#: Associated data for a secret value is this prefix followed by ``str(env)`` in UTF-8.
SECRET_AAD_PREFIX = b"strongroom:secret:v1\x00"
#: Associated data for a wrapped data key is this prefix followed by ``str(env)`` in UTF-8.
DATA_KEY_AAD_PREFIX = b"strongroom:datakey:v1\x00"
_KEY_ID_MESSAGE = b"strongroom key id v1"
_KEY_ID_HEX_CHARS = 16


def _check_key(key: bytes, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise InvalidInputError(f"a {what} must be exactly {KEY_BYTES} bytes")


def _pick_nonce(nonce: bytes | None) -> bytes:
    if nonce is None:
        return os.urandom(NONCE_BYTES)
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_BYTES:
        raise InvalidInputError(f"a nonce must be exactly {NONCE_BYTES} bytes")
    return nonce


def _aad(prefix: bytes, env: EnvRef) -> bytes:
    return prefix + str(env).encode("utf-8")


def _seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes | None:
    """The plaintext of ``sealed``, or ``None`` if it does not authenticate (for any reason)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(sealed) < len(VERSION) + NONCE_BYTES + _TAG_BYTES or sealed[:1] != VERSION:
        return None
    nonce = sealed[1 : 1 + NONCE_BYTES]
    body = sealed[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, aad)
    except InvalidTag:
        return None


def _fail() -> DecryptionError:
    # Always raised outside any ``except`` block and ``from None``, so neither
    # ``__cause__`` nor ``__context__`` carries anything about the input.
    return DecryptionError()


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return os.urandom(KEY_BYTES)


def key_id(master_key: bytes) -> str:
    """The public id of a master key: first 16 hex chars of HMAC-SHA256(key, "strongroom key id v1")."""
    _check_key(master_key, "master key")
    return hmac.new(master_key, _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:_KEY_ID_HEX_CHARS]


def encrypt_secret(data_key: bytes, env: EnvRef, plaintext: str, *, nonce: bytes | None = None) -> str:
    """Encrypt one secret value for ``env``; ``nonce`` is for test vectors only."""
    _check_key(data_key, "data key")
    if not isinstance(plaintext, str):
        raise InvalidInputError("a secret value must be a string")
    sealed = _seal(data_key, _pick_nonce(nonce), plaintext.encode("utf-8"), _aad(SECRET_AAD_PREFIX, env))
    return base64.b64encode(sealed).decode("ascii")


def decrypt_secret(data_key: bytes, env: EnvRef, token: str) -> str:
    """Decrypt a token made by :func:`encrypt_secret` for the same ``env``; else ``DecryptionError``."""
    _check_key(data_key, "data key")
    sealed: bytes | None = None
    if isinstance(token, str) and token.isascii():
        try:
            sealed = base64.b64decode(token, validate=True)
        except ValueError:
            sealed = None
    plaintext = None if sealed is None else _open(data_key, sealed, _aad(SECRET_AAD_PREFIX, env))
    text: str | None = None
    if plaintext is not None:
        try:
            text = plaintext.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if text is None:
        raise _fail() from None
    return text


def wrap_data_key(master_key: bytes, env: EnvRef, data_key: bytes, *, nonce: bytes | None = None) -> bytes:
    """Encrypt ``env``'s data key with a master key; ``nonce`` is for test vectors only."""
    _check_key(master_key, "master key")
    _check_key(data_key, "data key")
    return _seal(master_key, _pick_nonce(nonce), data_key, _aad(DATA_KEY_AAD_PREFIX, env))


def unwrap_data_key(master_key: bytes, env: EnvRef, wrapped: bytes) -> bytes:
    """Decrypt a data key made by :func:`wrap_data_key` for the same ``env``; else ``DecryptionError``."""
    _check_key(master_key, "master key")
    data_key = None
    if isinstance(wrapped, bytes | bytearray | memoryview):
        data_key = _open(master_key, bytes(wrapped), _aad(DATA_KEY_AAD_PREFIX, env))
    if data_key is None or len(data_key) != KEY_BYTES:
        raise _fail() from None
    return data_key

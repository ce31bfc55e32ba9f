"""Pulumi's passphrase secrets provider: the ``encryptionsalt`` state and ``v1:`` ciphertexts.

Format (see docs/pulumi.md for the sources in Pulumi's code):

- state (``encryptionsalt``): ``v1:<base64 salt>:<ciphertext of "pulumi">``;
- key: PBKDF2-HMAC-SHA256(passphrase, salt, 1,000,000 iterations, 32 bytes);
- value: AES-256-GCM, ``v1:<base64 12-byte nonce>:<base64 ciphertext with its 16-byte tag>``.

The key is derived once per :class:`PassphraseCrypter`; a sync builds one crypter per run.
"""

from __future__ import annotations

__all__ = [
    "PBKDF2_ITERATIONS",
    "SALT_BYTES",
    "VERIFICATION_PLAINTEXT",
    "KeyDerivation",
    "PassphraseCrypter",
    "derive_key",
]

import base64
import binascii
import os
from collections.abc import Callable

from strongroom.errors import DecryptionError, InvalidInputError, KeyUnavailableError

PBKDF2_ITERATIONS = 1_000_000
KEY_BYTES = 32
NONCE_BYTES = 12
#: Pulumi makes an 8-byte salt (``NewPassphraseSecretsManager``).
SALT_BYTES = 8
#: What the verification ciphertext in ``encryptionsalt`` decrypts to with the right passphrase.
VERIFICATION_PLAINTEXT = "pulumi"

#: ``derive(passphrase, salt) -> key``; injectable so that tests and the bench can count or time it.
KeyDerivation = Callable[[str, bytes], bytes]


def derive_key(passphrase: str, salt: bytes) -> bytes:
    """PBKDF2-HMAC-SHA256 with Pulumi's parameters (about a second of CPU)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, iterations=PBKDF2_ITERATIONS)
    return kdf.derive(passphrase.encode("utf-8"))


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise DecryptionError("a Pulumi ciphertext is malformed") from None


def _parse_state(state: str) -> tuple[bytes, str]:
    version, sep, rest = state.partition(":")
    salt_text, sep2, verifier = rest.partition(":")
    if version != "v1" or not sep or not sep2 or not verifier:
        raise InvalidInputError(
            "the stack file's encryptionsalt is not a Pulumi passphrase state (v1:<salt>:<verifier>)",
            hint="restore it from version control, or run `pulumi stack change-secrets-provider passphrase`",
        )
    try:
        salt = base64.b64decode(salt_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidInputError("the stack file's encryptionsalt has a salt that is not base64") from None
    return salt, verifier


class PassphraseCrypter:
    """Encrypts and decrypts values the way ``pulumi config set --secret`` does, with one derived key.

    Build it with :meth:`from_state` (an existing ``encryptionsalt``) or :meth:`create` (a new one).
    Never shows its key or passphrase.
    """

    __slots__ = ("_key", "state")

    def __init__(self, key: bytes, state: str) -> None:
        self._key = key
        #: The ``encryptionsalt`` value this crypter goes with.
        self.state = state

    def __repr__(self) -> str:
        return "PassphraseCrypter([key])"

    @classmethod
    def from_state(cls, passphrase: str, state: str, *, derive: KeyDerivation = derive_key) -> PassphraseCrypter:
        """Derive the key for ``state`` and check it against the verification ciphertext.

        A wrong passphrase is a :class:`KeyUnavailableError`, told apart from a damaged state.
        """
        salt, verifier = _parse_state(state)
        crypter = cls(derive(passphrase, salt), state)
        try:
            ok = crypter.decrypt(verifier) == VERIFICATION_PLAINTEXT
        except DecryptionError:
            ok = False
        if not ok:
            raise KeyUnavailableError(
                "the Pulumi passphrase is wrong for this stack: it does not unlock the stack file's encryptionsalt",
                hint="set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) to the stack's passphrase",
            )
        return crypter

    @classmethod
    def create(
        cls, passphrase: str, *, derive: KeyDerivation = derive_key, salt: bytes | None = None
    ) -> PassphraseCrypter:
        """A new state, as ``pulumi stack init`` makes it: a random 8-byte salt and the verifier."""
        salt = os.urandom(SALT_BYTES) if salt is None else salt
        crypter = cls(derive(passphrase, salt), "")
        verifier = crypter.encrypt(VERIFICATION_PLAINTEXT)
        crypter.state = f"v1:{base64.b64encode(salt).decode('ascii')}:{verifier}"
        return crypter

    def encrypt(self, plaintext: str, *, nonce: bytes | None = None) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
        sealed = AESGCM(self._key).encrypt(nonce, plaintext.encode("utf-8"), None)
        return f"v1:{base64.b64encode(nonce).decode('ascii')}:{base64.b64encode(sealed).decode('ascii')}"

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext of a ``v1:`` value; one opaque :class:`DecryptionError` for anything wrong."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        parts = ciphertext.split(":")
        if len(parts) != 3 or parts[0] != "v1":
            raise DecryptionError("a Pulumi ciphertext is malformed")
        nonce, sealed = _b64decode(parts[1]), _b64decode(parts[2])
        if len(nonce) != NONCE_BYTES:
            raise DecryptionError("a Pulumi ciphertext is malformed")
        try:
            return AESGCM(self._key).decrypt(nonce, sealed, None).decode("utf-8")
        except (InvalidTag, UnicodeDecodeError, ValueError):
            raise DecryptionError("a Pulumi ciphertext could not be decrypted with this stack's passphrase") from None

"""Strongroom's crypto seam: the ciphertext format and the master key providers."""

from __future__ import annotations

__all__ = [
    "EnvironmentKeyProvider",
    "KeyFileProvider",
    "KeyProvider",
    "Keyring",
    "MasterKey",
    "PassphraseProvider",
    "decrypt_secret",
    "encrypt_secret",
    "generate_master_key_b64",
    "key_id",
    "new_data_key",
    "provider_from_environment",
    "unwrap_data_key",
    "wrap_data_key",
]

from strongroom.crypto.format import (
    decrypt_secret,
    encrypt_secret,
    key_id,
    new_data_key,
    unwrap_data_key,
    wrap_data_key,
)
from strongroom.crypto.providers import (
    EnvironmentKeyProvider,
    KeyFileProvider,
    KeyProvider,
    Keyring,
    MasterKey,
    PassphraseProvider,
    generate_master_key_b64,
    provider_from_environment,
)

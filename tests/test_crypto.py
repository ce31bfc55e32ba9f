"""Tests for the crypto seam: the ciphertext format, its vectors and the master key providers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import strongroom
from strongroom.crypto import (
    EnvironmentKeyProvider,
    KeyFileProvider,
    KeyProvider,
    Keyring,
    MasterKey,
    PassphraseProvider,
    decrypt_secret,
    encrypt_secret,
    generate_master_key_b64,
    key_id,
    new_data_key,
    provider_from_environment,
    unwrap_data_key,
    wrap_data_key,
)
from strongroom.errors import DecryptionError, InvalidInputError, KeyUnavailableError
from strongroom.model import EnvRef

VECTORS = json.loads((Path(__file__).parent / "vectors" / "crypto.json").read_text(encoding="utf-8"))

ENV = EnvRef("aphiria.com", "Preview")
OTHER_ENV = EnvRef("aphiria.com", "Production")

#: A recognisable key: if any of its forms shows up in a repr or message, it leaked.
CANARY = b"CANARY-master-key-0123456789-XYZ"
assert len(CANARY) == 32


def canary_forms(key: bytes = CANARY) -> list[str]:
    return [
        key.hex(),
        key.hex().upper(),
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode(),
        key.decode("latin-1"),
        repr(key),
    ]


def assert_no_canary(text: str, key: bytes = CANARY) -> None:
    for form in canary_forms(key):
        assert form not in text


def cheap_params(salt: bytes = b"0123456789abcdef", kdf: str = "argon2id") -> str:
    """Real Argon2id/Scrypt parameters, but cheap enough for tests."""
    encoded = base64.b64encode(salt).decode()
    if kdf == "scrypt":
        return json.dumps({"kdf": "scrypt", "salt": encoded, "n": 16, "r": 1, "p": 1})
    return json.dumps({"kdf": "argon2id", "salt": encoded, "iterations": 1, "memory_cost": 64, "lanes": 1})


def assert_opaque(exc: BaseException) -> None:
    """A DecryptionError that says nothing and chains nothing."""
    assert isinstance(exc, DecryptionError)
    assert str(exc) == str(DecryptionError())
    assert exc.__cause__ is None
    assert exc.__context__ is None


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("vector", VECTORS["secrets"], ids=lambda v: f"{v['env']}:{len(v['plaintext'])}")
def test_secret_vector_encrypts_to_the_token(vector: dict[str, str]) -> None:
    token = encrypt_secret(
        bytes.fromhex(vector["data_key"]),
        EnvRef.parse(vector["env"]),
        vector["plaintext"],
        nonce=bytes.fromhex(vector["nonce"]),
    )
    assert token == vector["token"]


@pytest.mark.parametrize("vector", VECTORS["secrets"], ids=lambda v: f"{v['env']}:{len(v['plaintext'])}")
def test_secret_vector_decrypts(vector: dict[str, str]) -> None:
    key = bytes.fromhex(vector["data_key"])
    assert decrypt_secret(key, EnvRef.parse(vector["env"]), vector["token"]) == vector["plaintext"]


@pytest.mark.parametrize("vector", VECTORS["secrets"], ids=lambda v: f"{v['env']}:{len(v['plaintext'])}")
def test_secret_vector_matches_the_documented_layout(vector: dict[str, str]) -> None:
    """Decrypt with a bare AESGCM call on the layout in docs/crypto.md, not with our code."""
    raw = base64.b64decode(vector["token"], validate=True)
    assert raw[0] == 0x01
    nonce, body = raw[1:13], raw[13:]
    assert nonce == bytes.fromhex(vector["nonce"])
    assert len(body) == len(vector["plaintext"].encode("utf-8")) + 16
    aad = b"strongroom:secret:v1\x00" + vector["env"].encode("utf-8")
    plaintext = AESGCM(bytes.fromhex(vector["data_key"])).decrypt(nonce, body, aad)
    assert plaintext.decode("utf-8") == vector["plaintext"]


def test_vectors_cover_the_edge_cases() -> None:
    plaintexts = [v["plaintext"] for v in VECTORS["secrets"]]
    assert "" in plaintexts
    assert any(not p.isascii() for p in plaintexts)
    assert any(len(p) == 1024 for p in plaintexts)


@pytest.mark.parametrize("vector", VECTORS["wrapped_data_keys"], ids=lambda v: v["env"])
def test_wrapped_key_vector(vector: dict[str, str]) -> None:
    master = bytes.fromhex(vector["master_key"])
    env = EnvRef.parse(vector["env"])
    data_key = bytes.fromhex(vector["data_key"])
    wrapped = bytes.fromhex(vector["wrapped"])
    assert wrap_data_key(master, env, data_key, nonce=bytes.fromhex(vector["nonce"])) == wrapped
    assert unwrap_data_key(master, env, wrapped) == data_key
    assert MasterKey(master).unwrap(env, wrapped) == data_key
    # The documented layout, with a bare AESGCM call.
    assert wrapped[0] == 0x01
    assert wrapped[1:13] == bytes.fromhex(vector["nonce"])
    aad = b"strongroom:datakey:v1\x00" + vector["env"].encode("utf-8")
    assert AESGCM(master).decrypt(wrapped[1:13], wrapped[13:], aad) == data_key
    assert len(wrapped) == 1 + 12 + 32 + 16


@pytest.mark.parametrize("vector", VECTORS["key_ids"], ids=lambda v: v["key_id"])
def test_key_id_vector(vector: dict[str, str]) -> None:
    master = bytes.fromhex(vector["master_key"])
    assert key_id(master) == vector["key_id"]
    assert MasterKey(master).key_id == vector["key_id"]
    direct = hmac.new(master, b"strongroom key id v1", hashlib.sha256).hexdigest()[:16]
    assert direct == vector["key_id"]


# --------------------------------------------------------------------------- format


@pytest.mark.parametrize("plaintext", ["", "x", "hunter2", "🔑 秘密\n", "a" * 100_000])
def test_secret_round_trip(plaintext: str) -> None:
    key = new_data_key()
    token = encrypt_secret(key, ENV, plaintext)
    assert token.isascii()
    assert decrypt_secret(key, ENV, token) == plaintext


def test_each_encryption_uses_a_fresh_nonce() -> None:
    key = new_data_key()
    first, second = encrypt_secret(key, ENV, "same"), encrypt_secret(key, ENV, "same")
    assert first != second
    assert base64.b64decode(first)[1:13] != base64.b64decode(second)[1:13]


def test_new_data_key_is_random_and_32_bytes() -> None:
    assert len(new_data_key()) == 32
    assert new_data_key() != new_data_key()


def test_data_key_round_trip() -> None:
    master, data_key = os.urandom(32), new_data_key()
    wrapped = wrap_data_key(master, ENV, data_key)
    assert unwrap_data_key(master, ENV, wrapped) == data_key
    assert wrap_data_key(master, ENV, data_key) != wrapped


def test_token_copied_to_another_environment_fails() -> None:
    key = new_data_key()
    token = encrypt_secret(key, ENV, "hunter2")
    with pytest.raises(DecryptionError) as info:
        decrypt_secret(key, OTHER_ENV, token)
    assert_opaque(info.value)


def test_wrapped_key_copied_to_another_environment_fails() -> None:
    master = os.urandom(32)
    wrapped = wrap_data_key(master, ENV, new_data_key())
    with pytest.raises(DecryptionError) as info:
        unwrap_data_key(master, OTHER_ENV, wrapped)
    assert_opaque(info.value)


def test_every_tampered_byte_fails() -> None:
    key = new_data_key()
    raw = base64.b64decode(encrypt_secret(key, ENV, "hunter2"))
    for index in range(len(raw)):
        tampered = bytearray(raw)
        tampered[index] ^= 0x01
        with pytest.raises(DecryptionError) as info:
            decrypt_secret(key, ENV, base64.b64encode(bytes(tampered)).decode())
        assert_opaque(info.value)


def test_every_tampered_byte_of_a_wrapped_key_fails() -> None:
    master = os.urandom(32)
    wrapped = wrap_data_key(master, ENV, new_data_key())
    for index in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[index] ^= 0x80
        with pytest.raises(DecryptionError):
            unwrap_data_key(master, ENV, bytes(tampered))


@pytest.mark.parametrize("version", [0x00, 0x02, 0xFF])
def test_wrong_version_byte_fails(version: int) -> None:
    key = new_data_key()
    raw = bytearray(base64.b64decode(encrypt_secret(key, ENV, "hunter2")))
    raw[0] = version
    with pytest.raises(DecryptionError) as info:
        decrypt_secret(key, ENV, base64.b64encode(bytes(raw)).decode())
    assert_opaque(info.value)
    wrapped = bytearray(wrap_data_key(key, ENV, new_data_key()))
    wrapped[0] = version
    with pytest.raises(DecryptionError):
        unwrap_data_key(key, ENV, bytes(wrapped))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "AQ==",
        base64.b64encode(b"\x01" + bytes(27)).decode(),  # one byte short of nonce + tag
        "not base64!",
        "AQAAAAAAAAAAAAAAAPmKOU8fgJV8z3hkdtZ7bik",  # missing padding
        "AQAAAAAAAAAAAAAAAPmKOU8fgJV8z3hkdtZ7bik=\n",
        "ÄQAAAAAAAAAAAAAAAPmKOU8fgJV8z3hkdtZ7bik=",
        "🔑",
    ],
)
def test_malformed_tokens_fail_opaquely(token: str) -> None:
    with pytest.raises(DecryptionError) as info:
        decrypt_secret(bytes(range(32)), ENV, token)
    assert_opaque(info.value)


def test_the_empty_vector_is_accepted_unchanged() -> None:
    # The exact token of the first vector decrypts; the malformed variants above are near misses of it.
    vector = VECTORS["secrets"][0]
    assert decrypt_secret(bytes.fromhex(vector["data_key"]), EnvRef.parse(vector["env"]), vector["token"]) == ""


def test_short_or_non_bytes_wrapped_key_fails() -> None:
    with pytest.raises(DecryptionError):
        unwrap_data_key(os.urandom(32), ENV, b"\x01" + bytes(27))
    with pytest.raises(DecryptionError):
        unwrap_data_key(os.urandom(32), ENV, b"")
    with pytest.raises(DecryptionError):
        unwrap_data_key(os.urandom(32), ENV, "AQ==")  # type: ignore[arg-type]


def test_invalid_utf8_plaintext_fails_opaquely() -> None:
    key = new_data_key()
    nonce = bytes(12)
    aad = b"strongroom:secret:v1\x00" + str(ENV).encode()
    raw = b"\x01" + nonce + AESGCM(key).encrypt(nonce, b"\xff\xfe not utf-8", aad)
    with pytest.raises(DecryptionError) as info:
        decrypt_secret(key, ENV, base64.b64encode(raw).decode())
    assert_opaque(info.value)


def test_unwrapped_key_of_the_wrong_length_fails() -> None:
    master = os.urandom(32)
    nonce = bytes(12)
    aad = b"strongroom:datakey:v1\x00" + str(ENV).encode()
    wrapped = b"\x01" + nonce + AESGCM(master).encrypt(nonce, bytes(16), aad)
    with pytest.raises(DecryptionError):
        unwrap_data_key(master, ENV, wrapped)


def test_wrong_data_key_fails() -> None:
    token = encrypt_secret(new_data_key(), ENV, "hunter2")
    with pytest.raises(DecryptionError) as info:
        decrypt_secret(new_data_key(), ENV, token)
    assert_opaque(info.value)


def test_wrong_master_key_fails_on_unwrap() -> None:
    wrapped = wrap_data_key(os.urandom(32), ENV, new_data_key())
    with pytest.raises(DecryptionError) as info:
        unwrap_data_key(os.urandom(32), ENV, wrapped)
    assert_opaque(info.value)
    with pytest.raises(DecryptionError):
        MasterKey(os.urandom(32)).unwrap(ENV, wrapped)


def test_decryption_error_says_nothing_of_the_input() -> None:
    token = encrypt_secret(CANARY, ENV, "the-plaintext-canary")
    with pytest.raises(DecryptionError) as info:
        decrypt_secret(CANARY, OTHER_ENV, token)
    message = str(info.value) + repr(info.value) + repr(info.value.args)
    assert token not in message
    assert "the-plaintext-canary" not in message
    assert str(OTHER_ENV) not in message
    assert_no_canary(message)


@pytest.mark.parametrize("bad", [b"", bytes(16), bytes(31), bytes(33)])
def test_keys_must_be_32_bytes(bad: bytes) -> None:
    with pytest.raises(InvalidInputError):
        encrypt_secret(bad, ENV, "x")
    with pytest.raises(InvalidInputError):
        decrypt_secret(bad, ENV, "AQ==")
    with pytest.raises(InvalidInputError):
        wrap_data_key(bad, ENV, new_data_key())
    with pytest.raises(InvalidInputError):
        wrap_data_key(new_data_key(), ENV, bad)
    with pytest.raises(InvalidInputError):
        key_id(bad)
    with pytest.raises(InvalidInputError):
        MasterKey(bad)


def test_nonce_must_be_12_bytes() -> None:
    with pytest.raises(InvalidInputError):
        encrypt_secret(new_data_key(), ENV, "x", nonce=bytes(8))
    with pytest.raises(InvalidInputError):
        wrap_data_key(new_data_key(), ENV, new_data_key(), nonce=bytes(16))


def test_importing_the_seam_does_not_import_cryptography() -> None:
    src = str(Path(strongroom.__file__).resolve().parent.parent)
    code = (
        f"import sys; sys.path.insert(0, {src!r}); "
        "import strongroom.crypto, strongroom.crypto.format, strongroom.crypto.providers; "
        "print(sorted(m for m in sys.modules if m.startswith('cryptography')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- keys and keyrings


def test_master_key_repr_never_shows_the_key() -> None:
    key = MasterKey(CANARY)
    assert repr(key) == f"MasterKey(key_id={key.key_id!r})"
    assert_no_canary(repr(key))
    assert_no_canary(str(key))
    assert_no_canary(f"{key}")


def test_keyring_repr_never_shows_the_keys() -> None:
    other = os.urandom(32)
    ring = Keyring([MasterKey(CANARY), MasterKey(other)])
    for text in (repr(ring), str(ring), repr(ring.keys), repr(ring.primary)):
        assert_no_canary(text)
        assert_no_canary(text, other)
    assert MasterKey(CANARY).key_id in repr(ring)


def test_master_key_is_immutable_and_not_picklable() -> None:
    key = MasterKey(CANARY)
    with pytest.raises(AttributeError):
        key._key = bytes(32)
    with pytest.raises(AttributeError):
        key.key_id = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert key == MasterKey(CANARY)
    assert key != MasterKey(os.urandom(32))
    assert hash(key) == hash(MasterKey(CANARY))


def test_master_key_wraps_and_unwraps() -> None:
    key = MasterKey.generate()
    data_key = new_data_key()
    wrapped = key.wrap(ENV, data_key)
    assert key.unwrap(ENV, wrapped) == data_key
    with pytest.raises(DecryptionError):
        key.unwrap(OTHER_ENV, wrapped)


def test_keyring_primary_ids_and_get() -> None:
    new, old = MasterKey.generate(), MasterKey.generate()
    ring = Keyring([new, old, new], source="test keys")
    assert ring.primary is new
    assert ring.ids == (new.key_id, old.key_id)
    assert ring.get(old.key_id) is old
    assert old.key_id in ring
    assert len(ring) == 2


def test_keyring_get_missing_says_which_key_and_what_to_do() -> None:
    ring = Keyring([MasterKey(CANARY)], source="key file /somewhere/key")
    with pytest.raises(KeyUnavailableError) as info:
        ring.get("0123456789abcdef")
    text = str(info.value)
    assert "0123456789abcdef" in text
    assert "/somewhere/key" in text
    assert "STRONGROOM_MASTER_KEY" in text
    assert_no_canary(text)


def test_empty_keyring_is_refused() -> None:
    with pytest.raises(KeyUnavailableError):
        Keyring([])


# --------------------------------------------------------------------------- key file


def test_key_file_create(tmp_path: Path) -> None:
    path = tmp_path / "home" / "key"
    provider = KeyFileProvider(path)
    key = provider.create()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["format"] == "strongroom-keyfile"
    assert document["version"] == 1
    [entry] = document["keys"]
    assert entry["id"] == key.key_id
    assert len(base64.b64decode(entry["key"])) == 32
    assert entry["created"].endswith("Z")
    assert provider.load().primary == key
    assert provider.load().ids == (key.key_id,)
    assert provider.file_mode_warning() is None
    assert isinstance(provider, KeyProvider)
    assert str(path) in provider.description


def test_key_file_create_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "key"
    provider = KeyFileProvider(path)
    provider.create()
    before = path.read_bytes()
    with pytest.raises(InvalidInputError) as info:
        provider.create()
    assert "already exists" in str(info.value)
    assert "will not be overwritten" in str(info.value)
    assert info.value.hint
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["key"]


def test_key_file_create_does_not_overwrite_any_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("something precious")
    with pytest.raises(InvalidInputError):
        KeyFileProvider(path).create()
    assert path.read_text() == "something precious"


def test_key_file_repr_never_shows_the_key(tmp_path: Path) -> None:
    provider = KeyFileProvider(tmp_path / "key")
    key = provider.create()
    raw = base64.b64decode(json.loads((tmp_path / "key").read_text())["keys"][0]["key"])
    for text in (repr(provider), repr(provider.load()), repr(key)):
        assert_no_canary(text, raw)


def test_key_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "key"
    with pytest.raises(KeyUnavailableError) as info:
        KeyFileProvider(path).load()
    text = str(info.value)
    assert f"no master key at {path}" in text
    assert "strongroom init" in text
    assert "STRONGROOM_MASTER_KEY" in text
    assert "STRONGROOM_PASSPHRASE" in text
    assert info.value.__cause__ is None


def write_key_file(path: Path, keys: list[dict[str, str]]) -> None:
    document = {"format": "strongroom-keyfile", "version": 1, "keys": keys}
    path.write_text(json.dumps(document))
    path.chmod(0o600)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        b"\xff\xfe" + CANARY,
        "[]",
        json.dumps({"format": "something-else", "version": 1, "keys": []}),
        json.dumps({"format": "strongroom-keyfile", "version": 0, "keys": []}),
        json.dumps({"format": "strongroom-keyfile", "version": 1, "keys": []}),
        json.dumps({"format": "strongroom-keyfile", "version": 1, "keys": ["x"]}),
        # The key does not match its id.
        json.dumps(
            {
                "format": "strongroom-keyfile",
                "version": 1,
                "keys": [{"id": "0000000000000000", "key": base64.b64encode(CANARY).decode(), "created": ""}],
            }
        ),
        # A key of the wrong length.
        json.dumps(
            {
                "format": "strongroom-keyfile",
                "version": 1,
                "keys": [{"id": "x", "key": base64.b64encode(CANARY[:31]).decode(), "created": ""}],
            }
        ),
        # A key that is not base64 (but contains the canary).
        json.dumps(
            {
                "format": "strongroom-keyfile",
                "version": 1,
                "keys": [{"id": "x", "key": CANARY.decode() + "!", "created": ""}],
            }
        ),
        # Not JSON, but containing the key.
        '{"format": "strongroom-keyfile", "keys": [{"key": "' + base64.b64encode(CANARY).decode() + '"',
    ],
)
def test_key_file_malformed(tmp_path: Path, content: str | bytes) -> None:
    path = tmp_path / "key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(KeyUnavailableError) as info:
        KeyFileProvider(path).load()
    exc = info.value
    assert str(path) in str(exc)
    assert exc.__cause__ is None
    assert exc.__context__ is None  # nothing (e.g. a JSONDecodeError holding the file's text) is chained
    assert_no_canary(str(exc) + repr(exc))


def test_key_file_with_a_duplicate_key_is_malformed(tmp_path: Path) -> None:
    key = MasterKey(CANARY)
    entry = {"id": key.key_id, "key": base64.b64encode(CANARY).decode(), "created": "2024-01-01T00:00:00Z"}
    write_key_file(tmp_path / "key", [entry, entry])
    with pytest.raises(KeyUnavailableError):
        KeyFileProvider(tmp_path / "key").load()


def test_key_file_from_a_newer_strongroom(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text(json.dumps({"format": "strongroom-keyfile", "version": 2, "keys": []}))
    with pytest.raises(KeyUnavailableError) as info:
        KeyFileProvider(path).load()
    assert "upgrade" in str(info.value)


def test_key_file_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.mkdir()  # a directory cannot be read as a file, even by root
    with pytest.raises(KeyUnavailableError) as info:
        KeyFileProvider(path).load()
    assert str(path) in str(info.value)
    assert info.value.__context__ is None


def test_key_file_with_loose_mode_loads_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "key"
    provider = KeyFileProvider(path)
    key = provider.create()
    path.chmod(0o644)
    assert provider.load().primary == key
    warning = provider.file_mode_warning()
    assert warning is not None
    assert "0644" in warning
    assert "chmod 600" in warning
    assert KeyFileProvider(tmp_path / "missing").file_mode_warning() is None


def test_key_file_load_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    provider = KeyFileProvider(tmp_path / "key")
    provider.create()
    (tmp_path / "key").chmod(0o644)
    provider.load()
    assert capsys.readouterr() == ("", "")


def test_key_rotation_keeps_data_readable_at_every_step(tmp_path: Path) -> None:
    path = tmp_path / "key"
    provider = KeyFileProvider(path)
    old = provider.create()
    data_key = new_data_key()
    token = encrypt_secret(data_key, ENV, "hunter2")
    record = (old.key_id, old.wrap(ENV, data_key))  # what the store holds

    def read(ring: Keyring, stored: tuple[str, bytes]) -> str:
        return decrypt_secret(ring.get(stored[0]).unwrap(ENV, stored[1]), ENV, token)

    # 1. Add a new primary key: the old one is still there, so the store still reads.
    new = provider.add_key()
    ring = provider.load()
    assert ring.ids == (new.key_id, old.key_id)
    assert ring.primary == new
    assert read(ring, record) == "hunter2"
    assert sorted(os.listdir(tmp_path)) == ["key"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # 2. Re-wrap every data key with the primary (the store does this in one transaction).
    record = (ring.primary.key_id, ring.primary.wrap(ENV, ring.get(record[0]).unwrap(ENV, record[1])))
    assert read(provider.load(), record) == "hunter2"

    # 3. Retire the old key.
    provider.retire_keys(keep=new.key_id)
    ring = provider.load()
    assert ring.ids == (new.key_id,)
    assert read(ring, record) == "hunter2"
    with pytest.raises(KeyUnavailableError):
        ring.get(old.key_id)
    assert sorted(os.listdir(tmp_path)) == ["key"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_add_key_keeps_created_times_and_order(tmp_path: Path) -> None:
    provider = KeyFileProvider(tmp_path / "key")
    first = provider.create()
    second = provider.add_key()
    third = provider.add_key()
    document = json.loads((tmp_path / "key").read_text())
    assert [entry["id"] for entry in document["keys"]] == [third.key_id, second.key_id, first.key_id]
    assert all(entry["created"].endswith("Z") for entry in document["keys"])


def test_rewrite_tightens_a_loose_mode(tmp_path: Path) -> None:
    path = tmp_path / "key"
    provider = KeyFileProvider(path)
    provider.create()
    path.chmod(0o644)
    provider.add_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert provider.file_mode_warning() is None


def test_retire_keys_with_an_unknown_id(tmp_path: Path) -> None:
    provider = KeyFileProvider(tmp_path / "key")
    provider.create()
    before = (tmp_path / "key").read_bytes()
    with pytest.raises(InvalidInputError):
        provider.retire_keys(keep="0000000000000000")
    assert (tmp_path / "key").read_bytes() == before


def test_failed_rewrite_leaves_no_temp_file_and_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "key"
    provider = KeyFileProvider(path)
    key = provider.create()
    before = path.read_bytes()

    def failing_replace(src: object, dst: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk on fire"):
        provider.add_key()
    with pytest.raises(OSError, match="disk on fire"):
        provider.retire_keys(keep=key.key_id)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["key"]
    assert path.read_bytes() == before
    assert provider.load().ids == (key.key_id,)


def test_failed_temp_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    provider = KeyFileProvider(tmp_path / "key")
    provider.create()

    def failing_fsync(fd: int) -> None:
        raise OSError("no fsync today")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="no fsync today"):
        provider.add_key()
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["key"]


def test_add_key_without_a_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailableError):
        KeyFileProvider(tmp_path / "key").add_key()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- passphrase


def test_passphrase_derivation_is_deterministic() -> None:
    params = cheap_params()
    first = PassphraseProvider("correct horse", params).load()
    second = PassphraseProvider("correct horse", params).load()
    assert first.primary == second.primary
    assert first.primary.key_id == second.primary.key_id


def test_a_different_salt_gives_a_different_key() -> None:
    first = PassphraseProvider("correct horse", cheap_params(b"0123456789abcdef")).load()
    second = PassphraseProvider("correct horse", cheap_params(b"fedcba9876543210")).load()
    assert first.primary != second.primary


def test_wrong_passphrase_fails_to_unwrap() -> None:
    params = cheap_params()
    right = PassphraseProvider("correct horse", params).load().primary
    wrong = PassphraseProvider("correct hors", params).load().primary
    wrapped = right.wrap(ENV, new_data_key())
    assert wrong.key_id != right.key_id
    with pytest.raises(DecryptionError):
        wrong.unwrap(ENV, wrapped)


def test_passphrase_is_unicode_normalised() -> None:
    params = cheap_params()
    composed = PassphraseProvider("caf\u00e9", params).load().primary
    decomposed = PassphraseProvider("cafe\u0301", params).load().primary
    assert composed == decomposed


def test_scrypt_params_work() -> None:
    params = cheap_params(kdf="scrypt")
    first = PassphraseProvider("correct horse", params).load().primary
    assert first == PassphraseProvider("correct horse", params).load().primary
    assert first != PassphraseProvider("correct horse", cheap_params()).load().primary


def test_new_params() -> None:
    params = json.loads(PassphraseProvider.new_params())
    assert params["kdf"] in {"argon2id", "scrypt"}
    assert len(base64.b64decode(params["salt"])) == 16
    if params["kdf"] == "argon2id":
        assert (params["iterations"], params["memory_cost"], params["lanes"]) == (3, 65536, 4)
    else:
        assert (params["n"], params["r"], params["p"]) == (2**15, 8, 1)
    assert json.loads(PassphraseProvider.new_params())["salt"] != params["salt"]


@pytest.mark.slow
def test_new_params_derive_a_key() -> None:
    params = PassphraseProvider.new_params()
    assert PassphraseProvider("pw", params).load().primary == PassphraseProvider("pw", params).load().primary


def test_empty_passphrase_is_invalid() -> None:
    with pytest.raises(InvalidInputError):
        PassphraseProvider("", cheap_params())


@pytest.mark.parametrize(
    "params",
    [
        "",
        "not json",
        "[]",
        json.dumps({"kdf": "md5", "salt": base64.b64encode(bytes(16)).decode()}),
        json.dumps({"kdf": "argon2id", "salt": "!!", "iterations": 1, "memory_cost": 64, "lanes": 1}),
        json.dumps({"kdf": "argon2id", "salt": base64.b64encode(bytes(16)).decode(), "iterations": 0}),
        json.dumps({"kdf": "scrypt", "salt": base64.b64encode(bytes(16)).decode(), "n": 1000, "r": 8, "p": 1}),
    ],
)
def test_malformed_params(params: str) -> None:
    with pytest.raises(KeyUnavailableError) as info:
        PassphraseProvider("correct horse", params)
    assert info.value.__context__ is None


def test_passphrase_provider_repr_hides_the_passphrase() -> None:
    provider = PassphraseProvider("the-passphrase-canary", cheap_params())
    assert "the-passphrase-canary" not in repr(provider)
    assert "the-passphrase-canary" not in provider.description
    assert isinstance(provider, KeyProvider)


# --------------------------------------------------------------------------- environment


def test_environment_provider_with_one_key() -> None:
    ring = EnvironmentKeyProvider(base64.b64encode(CANARY).decode()).load()
    assert ring.primary == MasterKey(CANARY)
    assert "STRONGROOM_MASTER_KEY" in ring.source


def test_environment_provider_with_several_keys() -> None:
    new, old = os.urandom(32), os.urandom(32)
    value = f"{base64.b64encode(new).decode()}, {base64.b64encode(old).decode()}"
    ring = EnvironmentKeyProvider(value).load()
    assert ring.primary == MasterKey(new)
    assert ring.ids == (key_id(new), key_id(old))
    wrapped = MasterKey(old).wrap(ENV, bytes(32))
    assert ring.get(key_id(old)).unwrap(ENV, wrapped) == bytes(32)


@pytest.mark.parametrize(
    "value",
    [
        "not-base64-CANARY-VALUE!",
        base64.b64encode(b"CANARY-too-short").decode(),
        base64.b64encode(CANARY + b"x").decode(),
        base64.b64encode(CANARY).decode() + ",CANARY-VALUE-second!",
    ],
)
def test_environment_provider_bad_value(value: str) -> None:
    provider = EnvironmentKeyProvider(value, variable="MY_KEY")
    with pytest.raises(KeyUnavailableError) as info:
        provider.load()
    text = str(info.value) + repr(info.value)
    assert "MY_KEY" in text
    assert value not in text
    for part in value.split(","):
        assert part not in text
    assert "CANARY" not in text
    assert info.value.__context__ is None
    assert value not in repr(provider)


def test_environment_provider_empty_value() -> None:
    with pytest.raises(KeyUnavailableError) as info:
        EnvironmentKeyProvider(" ").load()
    assert "STRONGROOM_MASTER_KEY" in str(info.value)


def test_environment_provider_repr_hides_the_value() -> None:
    provider = EnvironmentKeyProvider(base64.b64encode(CANARY).decode())
    assert_no_canary(repr(provider) + provider.description)
    assert isinstance(provider, KeyProvider)


def test_generate_master_key_b64() -> None:
    value = generate_master_key_b64()
    assert len(base64.b64decode(value, validate=True)) == 32
    assert value != generate_master_key_b64()
    assert EnvironmentKeyProvider(value).load().primary.key_id == key_id(base64.b64decode(value))


# --------------------------------------------------------------------------- choosing a provider


MASTER_B64 = base64.b64encode(CANARY).decode()


def test_master_key_variable_comes_first(tmp_path: Path) -> None:
    environ = {
        "STRONGROOM_MASTER_KEY": MASTER_B64,
        "STRONGROOM_PASSPHRASE": "pw",
        "STRONGROOM_PASSPHRASE_FILE": str(tmp_path / "pw"),
    }
    provider = provider_from_environment(environ, tmp_path, cheap_params())
    assert isinstance(provider, EnvironmentKeyProvider)
    assert provider.load().primary == MasterKey(CANARY)


def test_master_key_variable_without_passphrase_params(tmp_path: Path) -> None:
    provider = provider_from_environment({"STRONGROOM_MASTER_KEY": MASTER_B64}, tmp_path, None)
    assert isinstance(provider, EnvironmentKeyProvider)


def test_passphrase_comes_before_the_key_file(tmp_path: Path) -> None:
    KeyFileProvider(tmp_path / "key").create()
    params = cheap_params()
    provider = provider_from_environment({"STRONGROOM_PASSPHRASE": "pw"}, tmp_path, params)
    assert isinstance(provider, PassphraseProvider)
    assert provider.load().primary == PassphraseProvider("pw", params).load().primary
    assert "STRONGROOM_PASSPHRASE" in provider.description


def test_passphrase_variable_comes_before_the_passphrase_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    params = cheap_params()
    environ = {"STRONGROOM_PASSPHRASE": "from-variable", "STRONGROOM_PASSPHRASE_FILE": str(tmp_path / "pw")}
    provider = provider_from_environment(environ, tmp_path, params)
    assert provider.load().primary == PassphraseProvider("from-variable", params).load().primary


@pytest.mark.parametrize(
    ("content", "passphrase"),
    [("pw\n", "pw"), ("pw", "pw"), ("pw\r\n", "pw"), ("pw\n\n", "pw\n"), (" pw \n", " pw ")],
)
def test_passphrase_file_strips_one_trailing_newline(tmp_path: Path, content: str, passphrase: str) -> None:
    (tmp_path / "pw").write_bytes(content.encode())
    params = cheap_params()
    provider = provider_from_environment({"STRONGROOM_PASSPHRASE_FILE": str(tmp_path / "pw")}, tmp_path, params)
    assert isinstance(provider, PassphraseProvider)
    assert provider.load().primary == PassphraseProvider(passphrase, params).load().primary


def test_passphrase_file_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailableError) as info:
        provider_from_environment({"STRONGROOM_PASSPHRASE_FILE": str(tmp_path / "nope")}, tmp_path, cheap_params())
    assert "STRONGROOM_PASSPHRASE_FILE" in str(info.value)


def test_passphrase_file_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "pw").write_bytes(b"\xff\xfe secret-canary")
    with pytest.raises(KeyUnavailableError) as info:
        provider_from_environment({"STRONGROOM_PASSPHRASE_FILE": str(tmp_path / "pw")}, tmp_path, cheap_params())
    assert "secret-canary" not in str(info.value)
    assert info.value.__context__ is None


def test_empty_passphrase_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    with pytest.raises(InvalidInputError):
        provider_from_environment({"STRONGROOM_PASSPHRASE_FILE": str(tmp_path / "pw")}, tmp_path, cheap_params())


@pytest.mark.parametrize("variable", ["STRONGROOM_PASSPHRASE", "STRONGROOM_PASSPHRASE_FILE"])
def test_passphrase_for_a_store_made_without_one(tmp_path: Path, variable: str) -> None:
    (tmp_path / "pw").write_text("pw")
    value = str(tmp_path / "pw") if variable.endswith("FILE") else "pw"
    with pytest.raises(KeyUnavailableError) as info:
        provider_from_environment({variable: value}, tmp_path, None)
    assert "not initialised with a passphrase" in str(info.value)
    assert variable in str(info.value)


def test_key_file_is_the_default(tmp_path: Path) -> None:
    provider = provider_from_environment({"HOME": str(tmp_path)}, tmp_path, None)
    assert isinstance(provider, KeyFileProvider)
    assert provider.path == tmp_path / "key"
    provider_with_params = provider_from_environment({}, tmp_path, cheap_params())
    assert isinstance(provider_with_params, KeyFileProvider)

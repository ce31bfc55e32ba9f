"""Master key providers: a key file, a passphrase, or an environment variable, behind one Protocol."""

from __future__ import annotations

__all__ = [
    "KEYFILE_FORMAT",
    "KEYFILE_VERSION",
    "EnvironmentKeyProvider",
    "KeyFileProvider",
    "KeyProvider",
    "Keyring",
    "MasterKey",
    "PassphraseProvider",
    "generate_master_key_b64",
    "provider_from_environment",
]

import base64
import hmac
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol, runtime_checkable

from strongroom.crypto import format as fmt
from strongroom.errors import InvalidInputError, KeyUnavailableError
from strongroom.model import EnvRef

KEYFILE_FORMAT = "strongroom-keyfile"
KEYFILE_VERSION = 1

_MASTER_KEY_VAR = "STRONGROOM_MASTER_KEY"
_PASSPHRASE_VAR = "STRONGROOM_PASSPHRASE"
_PASSPHRASE_FILE_VAR = "STRONGROOM_PASSPHRASE_FILE"
_KEY_SOURCES_HINT = "use the key file, passphrase or STRONGROOM_MASTER_KEY this store was created with"
_GENERATE_HINT = "a master key is 32 random bytes in base64, for example from `openssl rand -base64 32`"
_SALT_BYTES = 16

# Argon2id defaults (RFC 9106 "second recommended option": 64 MiB, 3 passes, 4 lanes).
_ARGON2_ITERATIONS = 3
_ARGON2_MEMORY_KIB = 65536
_ARGON2_LANES = 4
# Scrypt fallback defaults.
_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1


# --------------------------------------------------------------------------- keys


class MasterKey:
    """One 256-bit master key. Immutable; its ``repr`` shows only the key id, never the key."""

    __slots__ = ("_key", "_key_id")

    _key: bytes
    _key_id: str

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != fmt.KEY_BYTES:
            raise InvalidInputError(f"a master key must be exactly {fmt.KEY_BYTES} bytes")
        object.__setattr__(self, "_key", key)
        object.__setattr__(self, "_key_id", fmt.key_id(key))

    @classmethod
    def generate(cls) -> MasterKey:
        """A fresh random master key."""
        return cls(os.urandom(fmt.KEY_BYTES))

    @property
    def key_id(self) -> str:
        return self._key_id

    def wrap(self, env: EnvRef, data_key: bytes) -> bytes:
        """``env``'s data key, encrypted with this master key."""
        return fmt.wrap_data_key(self._key, env, data_key)

    def unwrap(self, env: EnvRef, wrapped: bytes) -> bytes:
        """The data key in ``wrapped``; ``DecryptionError`` unless wrapped with this key for ``env``."""
        return fmt.unwrap_data_key(self._key, env, wrapped)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("MasterKey is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("MasterKey is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a MasterKey cannot be pickled or copied")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self._key_id)

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self._key_id!r})"


class Keyring:
    """One or more master keys, newest (the primary) first."""

    __slots__ = ("_keys", "source")

    def __init__(self, keys: Iterable[MasterKey], *, source: str = "the configured key provider") -> None:
        unique: dict[str, MasterKey] = {}
        for key in keys:
            unique.setdefault(key.key_id, key)
        if not unique:
            raise KeyUnavailableError(f"no master key was loaded from {source}", hint=_KEY_SOURCES_HINT)
        self._keys = tuple(unique.values())
        self.source = source

    @property
    def primary(self) -> MasterKey:
        """The newest key: new data keys are wrapped with it."""
        return self._keys[0]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(key.key_id for key in self._keys)

    @property
    def keys(self) -> tuple[MasterKey, ...]:
        return self._keys

    def get(self, key_id: str) -> MasterKey:
        """The key with ``key_id``; ``KeyUnavailableError`` saying what to do if it is not loaded."""
        for key in self._keys:
            if key.key_id == key_id:
                return key
        raise KeyUnavailableError(
            f"the master key with id {key_id} is not loaded; this store's data keys were wrapped with it "
            f"(loaded from {self.source}: {', '.join(self.ids)})",
            hint=_KEY_SOURCES_HINT,
        )

    def __contains__(self, key_id: object) -> bool:
        return key_id in self.ids

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(primary={self.primary.key_id!r}, ids={self.ids!r})"


@runtime_checkable
class KeyProvider(Protocol):
    """Where the master keys come from. ``description`` names the source for messages."""

    description: str

    def load(self) -> Keyring: ...


def generate_master_key_b64() -> str:
    """A fresh random master key in base64, as STRONGROOM_MASTER_KEY takes it."""
    return base64.b64encode(os.urandom(fmt.KEY_BYTES)).decode("ascii")


def _b64_key(text: object) -> bytes | None:
    """The 32 bytes ``text`` holds in base64, or ``None`` (never raises, never chains)."""
    if not isinstance(text, str) or not text.isascii():
        return None
    raw: bytes | None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = None
    return raw if raw is not None and len(raw) == fmt.KEY_BYTES else None


# --------------------------------------------------------------------------- key file


@dataclass(frozen=True, slots=True)
class _Entry:
    key: MasterKey
    created: str

    def to_json(self) -> dict[str, str]:
        return {
            "id": self.key.key_id,
            "key": base64.b64encode(self.key._key).decode("ascii"),
            "created": self.created,
        }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform (e.g. Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_new_file(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0600, never over an existing file), write ``data`` and fsync it.

    Raises ``FileExistsError`` if ``path`` exists. On any other failure the file is removed.
    """
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


class KeyFileProvider:
    """Master keys kept in a JSON key file (mode 0600), newest first."""

    __slots__ = ("_now", "description", "path")

    def __init__(self, path: Path, *, now: Callable[[], datetime] = _utc_now) -> None:
        self.path = path
        self.description = f"key file {path}"
        self._now = now

    def __repr__(self) -> str:
        return f"KeyFileProvider(path={str(self.path)!r})"

    # -- reading

    def _malformed(self, reason: str) -> KeyUnavailableError:
        return KeyUnavailableError(
            f"the key file {self.path} is malformed: {reason}",
            hint="restore it from your backup of the key file; it cannot be repaired by hand",
        )

    def _read_entries(self) -> list[_Entry]:
        problem: str | None = None
        data = b""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            problem = "missing"
        except OSError as exc:
            problem = exc.strerror or type(exc).__name__
        if problem == "missing":
            raise KeyUnavailableError(
                f"no master key at {self.path}",
                hint=f"run `strongroom init`, or set {_MASTER_KEY_VAR} / {_PASSPHRASE_VAR}",
            ) from None
        if problem is not None:
            raise KeyUnavailableError(
                f"cannot read the key file {self.path}: {problem}",
                hint="check that it exists and that this user may read it",
            ) from None
        document: Any = None
        try:
            document = json.loads(data)
        except ValueError:  # JSONDecodeError / UnicodeDecodeError: both would carry the file's text
            document = None
        if document is None:
            raise self._malformed("it is not valid JSON") from None
        return self._parse(document)

    def _parse(self, document: Any) -> list[_Entry]:
        if not isinstance(document, dict) or document.get("format") != KEYFILE_FORMAT:
            raise self._malformed(f"it is not a {KEYFILE_FORMAT} file")
        version = document.get("version")
        if version != KEYFILE_VERSION:
            if isinstance(version, int) and version > KEYFILE_VERSION:
                raise KeyUnavailableError(
                    f"the key file {self.path} has version {version}, newer than this Strongroom knows",
                    hint="upgrade Strongroom",
                )
            raise self._malformed("unknown version")
        keys = document.get("keys")
        if not isinstance(keys, list) or not keys:
            raise self._malformed("it holds no keys")
        entries: list[_Entry] = []
        for number, item in enumerate(keys, start=1):
            if not isinstance(item, dict):
                raise self._malformed(f"key number {number} is not an object")
            raw = _b64_key(item.get("key"))
            if raw is None:
                raise self._malformed(f"key number {number} is not base64 of exactly {fmt.KEY_BYTES} bytes")
            key = MasterKey(raw)
            if item.get("id") != key.key_id:
                raise self._malformed(f"key number {number} does not match its id")
            created = item.get("created")
            entries.append(_Entry(key, created if isinstance(created, str) else ""))
        if len({entry.key.key_id for entry in entries}) != len(entries):
            raise self._malformed("it holds the same key twice")
        return entries

    def load(self) -> Keyring:
        """The keys in the file; ``KeyUnavailableError`` if it is missing, unreadable or malformed."""
        return Keyring((entry.key for entry in self._read_entries()), source=self.description)

    def file_mode_warning(self) -> str | None:
        """A warning if the key file is readable or writable by group or others, else ``None``."""
        try:
            mode = self.path.stat().st_mode & 0o777
        except OSError:
            return None
        if os.name != "posix" or not mode & 0o077:
            return None
        return (
            f"the key file {self.path} has mode {mode:04o}, so other users may read the master key; "
            f"run `chmod 600 {self.path}`"
        )

    # -- writing

    def _serialise(self, entries: list[_Entry]) -> bytes:
        document = {
            "format": KEYFILE_FORMAT,
            "version": KEYFILE_VERSION,
            "keys": [entry.to_json() for entry in entries],
        }
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")

    def create(self) -> MasterKey:
        """Write a new key file with one fresh key; refuses to overwrite an existing file."""
        key = MasterKey.generate()
        data = self._serialise([_Entry(key, _iso_z(self._now()))])
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        exists = False
        try:
            _write_new_file(self.path, data)
        except FileExistsError:
            exists = True
        if exists:
            raise InvalidInputError(
                f"the key file {self.path} already exists and will not be overwritten",
                hint="it may hold the only copy of an existing store's master key; use it as it is, "
                "or move it away yourself (after backing it up) to start over",
            )
        _fsync_dir(self.path.parent)
        return key

    def _replace(self, entries: list[_Entry]) -> None:
        """Atomically replace the key file with ``entries`` (temp file, fsync, rename, fsync dir)."""
        data = self._serialise(entries)
        directory = self.path.parent
        while True:
            temp = directory / f".{self.path.name}.{os.urandom(8).hex()}.tmp"
            try:
                _write_new_file(temp, data)
            except FileExistsError:
                continue
            break
        try:
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(directory)

    def add_key(self) -> MasterKey:
        """Add a fresh key as the new primary, keeping every old key after it; returns the new key."""
        entries = self._read_entries()
        key = MasterKey.generate()
        self._replace([_Entry(key, _iso_z(self._now())), *entries])
        return key

    def retire_keys(self, keep: str) -> None:
        """Rewrite the key file keeping only the key with id ``keep``.

        Only do this once no data key is wrapped with any other key in the file.
        """
        entries = self._read_entries()
        kept = [entry for entry in entries if entry.key.key_id == keep]
        if not kept:
            raise InvalidInputError(
                f"the key file {self.path} has no key with id {keep}",
                hint=f"its keys are: {', '.join(entry.key.key_id for entry in entries)}",
            )
        self._replace(kept)


# --------------------------------------------------------------------------- passphrase


def _argon2_supported() -> bool:
    try:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
    except ImportError:
        return False
    try:
        Argon2id(salt=b"\x00" * _SALT_BYTES, length=32, iterations=1, lanes=1, memory_cost=8).derive(b"x")
    except UnsupportedAlgorithm:
        return False
    return True


def _int_in(params: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


@dataclass(frozen=True, slots=True)
class _KdfParams:
    kdf: str
    salt: bytes
    iterations: int = 0
    memory_cost: int = 0
    lanes: int = 0
    n: int = 0
    r: int = 0
    p: int = 0


def _parse_kdf_params(text: str) -> _KdfParams:
    def bad(reason: str) -> KeyUnavailableError:
        return KeyUnavailableError(
            f"this store's passphrase parameters are malformed: {reason}",
            hint="the store's metadata may be damaged; restore it from a backup",
        )

    document: Any = None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise bad("not a JSON object") from None
    salt: bytes | None = None
    salt_text = document.get("salt")
    if isinstance(salt_text, str) and salt_text.isascii():
        try:
            salt = base64.b64decode(salt_text, validate=True)
        except ValueError:
            salt = None
    if salt is None or not 8 <= len(salt) <= 1024:
        raise bad("the salt is not base64 of 8 to 1024 bytes") from None
    kdf = document.get("kdf")
    if kdf == "argon2id":
        iterations = _int_in(document, "iterations", 1, 64)
        lanes = _int_in(document, "lanes", 1, 64)
        memory = _int_in(document, "memory_cost", 8, 4 * 1024 * 1024)
        if iterations is None or lanes is None or memory is None or memory < 8 * lanes:
            raise bad("iterations, memory_cost or lanes is out of range")
        return _KdfParams("argon2id", salt, iterations=iterations, memory_cost=memory, lanes=lanes)
    if kdf == "scrypt":
        n = _int_in(document, "n", 2, 2**22)
        r = _int_in(document, "r", 1, 64)
        p = _int_in(document, "p", 1, 64)
        if n is None or r is None or p is None or n & (n - 1):
            raise bad("n, r or p is out of range")
        return _KdfParams("scrypt", salt, n=n, r=r, p=p)
    raise bad("unknown key derivation function")


class PassphraseProvider:
    """One master key derived from a passphrase with Argon2id (or Scrypt) and the store's parameters."""

    __slots__ = ("_params", "_passphrase", "description")

    def __init__(self, passphrase: str, params: str, *, source: str = "passphrase") -> None:
        if not isinstance(passphrase, str) or not passphrase:
            raise InvalidInputError(f"the {source} is empty", hint="a passphrase must have at least one character")
        self._passphrase = passphrase
        self._params = _parse_kdf_params(params)
        self.description = source

    def __repr__(self) -> str:
        return f"PassphraseProvider(kdf={self._params.kdf!r})"

    @staticmethod
    def new_params() -> str:
        """Fresh (non-secret) derivation parameters with a random 16-byte salt, as a JSON string."""
        salt = base64.b64encode(os.urandom(_SALT_BYTES)).decode("ascii")
        document: dict[str, object]
        if _argon2_supported():
            document = {
                "kdf": "argon2id",
                "salt": salt,
                "iterations": _ARGON2_ITERATIONS,
                "memory_cost": _ARGON2_MEMORY_KIB,
                "lanes": _ARGON2_LANES,
            }
        else:
            document = {"kdf": "scrypt", "salt": salt, "n": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P}
        return json.dumps(document, sort_keys=True)

    def _derive(self) -> bytes:
        import unicodedata

        secret = unicodedata.normalize("NFC", self._passphrase).encode("utf-8")
        params = self._params
        if params.kdf == "scrypt":
            from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

            return Scrypt(salt=params.salt, length=fmt.KEY_BYTES, n=params.n, r=params.r, p=params.p).derive(secret)
        if not _argon2_supported():
            raise KeyUnavailableError(
                "this store's passphrase key is derived with Argon2id, which the installed "
                "cryptography library does not support",
                hint="install cryptography 44 or newer (built with OpenSSL 3.2 or newer)",
            )
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        return Argon2id(
            salt=params.salt,
            length=fmt.KEY_BYTES,
            iterations=params.iterations,
            lanes=params.lanes,
            memory_cost=params.memory_cost,
        ).derive(secret)

    def load(self) -> Keyring:
        """Derive the master key (deliberately slow: a fraction of a second)."""
        return Keyring([MasterKey(self._derive())], source=self.description)


# --------------------------------------------------------------------------- environment


class EnvironmentKeyProvider:
    """Master keys given in an environment variable: base64 keys separated by commas, primary first."""

    __slots__ = ("_value", "description", "variable")

    def __init__(self, value: str, *, variable: str = _MASTER_KEY_VAR) -> None:
        self._value = value
        self.variable = variable
        self.description = f"environment variable {variable}"

    def __repr__(self) -> str:
        return f"EnvironmentKeyProvider(variable={self.variable!r})"

    def load(self) -> Keyring:
        """The keys in the variable; ``KeyUnavailableError`` naming the variable if one is not valid."""
        parts = [part.strip() for part in self._value.split(",")]
        parts = [part for part in parts if part]
        if not parts:
            raise KeyUnavailableError(f"{self.variable} is set but empty", hint=_GENERATE_HINT)
        keys: list[MasterKey] = []
        for number, part in enumerate(parts, start=1):
            raw = _b64_key(part)
            if raw is None:
                which = "its value" if len(parts) == 1 else f"key number {number} in it"
                raise KeyUnavailableError(
                    f"{self.variable} is not valid: {which} is not base64 of exactly {fmt.KEY_BYTES} bytes",
                    hint=_GENERATE_HINT,
                )
            keys.append(MasterKey(raw))
        return Keyring(keys, source=self.description)


# --------------------------------------------------------------------------- choosing


def _read_passphrase_file(name: str) -> str:
    path = Path(name).expanduser()
    problem: str | None = None
    text: str | None = None
    try:
        data = path.read_bytes()
    except OSError as exc:
        problem = exc.strerror or type(exc).__name__
        data = b""
    if problem is None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:  # carries the bytes: never let it chain
            text = None
    if problem is not None or text is None:
        raise KeyUnavailableError(
            f"cannot read {_PASSPHRASE_FILE_VAR} ({path}): {problem or 'it is not UTF-8 text'}",
            hint=f"point {_PASSPHRASE_FILE_VAR} at a readable UTF-8 file holding the passphrase",
        ) from None
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text


def provider_from_environment(environ: Mapping[str, str], home: Path, kdf_params: str | None) -> KeyProvider:
    """Choose the provider: STRONGROOM_MASTER_KEY, else a passphrase, else the key file in ``home``.

    ``kdf_params`` is the store's passphrase parameters, or ``None`` if it was not made with a passphrase.
    """
    if _MASTER_KEY_VAR in environ:
        return EnvironmentKeyProvider(environ[_MASTER_KEY_VAR], variable=_MASTER_KEY_VAR)
    variable = next((name for name in (_PASSPHRASE_VAR, _PASSPHRASE_FILE_VAR) if name in environ), None)
    if variable is not None:
        if kdf_params is None:
            raise KeyUnavailableError(
                f"{variable} is set, but this store was not initialised with a passphrase",
                hint=f"unset {variable}; use the key file or {_MASTER_KEY_VAR} this store was created with",
            )
        if variable == _PASSPHRASE_VAR:
            passphrase = environ[_PASSPHRASE_VAR]
            source = f"passphrase in {_PASSPHRASE_VAR}"
        else:
            passphrase = _read_passphrase_file(environ[_PASSPHRASE_FILE_VAR])
            source = f"passphrase file {environ[_PASSPHRASE_FILE_VAR]} ({_PASSPHRASE_FILE_VAR})"
        return PassphraseProvider(passphrase, kdf_params, source=source)
    return KeyFileProvider(home / "key")

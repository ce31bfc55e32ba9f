"""The storage seam: a small Protocol every backend implements.

Storage knows nothing of plaintext. It holds environments (with their wrapped
data key), immutable revisions (YAML with ciphertext only), revision tags and a
little store metadata. Every method is atomic: it either happens whole or not at
all.
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION", "Store", "open_store"]

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from strongroom.errors import InvalidInputError
from strongroom.model import EnvironmentRecord, EnvRef, RevisionRecord, TagRecord

#: The Alembic head revision this code expects. Bumped with every migration.
SCHEMA_VERSION = "0001"


@runtime_checkable
class Store(Protocol):
    """What the service needs from storage.

    Errors: ``EnvironmentNotFoundError``, ``RevisionNotFoundError``,
    ``TagNotFoundError``, ``AlreadyExistsError``, ``ConflictError`` (stale
    ``expected_latest``), ``StoreUnavailableError`` (cannot reach / not initialised).
    """

    def create_environment(
        self,
        ref: EnvRef,
        *,
        data_key: bytes,
        key_id: str,
        definition: str,
        compiled: str,
        author: str,
        at: str,
    ) -> RevisionRecord:
        """Create ``ref`` with revision 1. ``AlreadyExistsError`` if it exists."""
        ...

    def get_environment(self, ref: EnvRef) -> EnvironmentRecord: ...

    def list_environments(
        self, *, project: str | None = None, after: EnvRef | None = None, limit: int | None = None
    ) -> list[EnvironmentRecord]:
        """Environments ordered by (project, name), strictly after ``after``, at most ``limit``."""
        ...

    def get_revision(self, ref: EnvRef, number: int | None = None) -> RevisionRecord:
        """Revision ``number``, or the newest when ``None``."""
        ...

    def list_revisions(self, ref: EnvRef) -> list[RevisionRecord]:
        """Every revision, newest first."""
        ...

    def append_revision(
        self,
        ref: EnvRef,
        *,
        expected_latest: int,
        definition: str,
        compiled: str,
        author: str,
        at: str,
    ) -> RevisionRecord:
        """Write revision ``expected_latest + 1``.

        ``ConflictError`` (and nothing written) when the newest revision is not
        ``expected_latest`` any more.
        """
        ...

    def import_environment(
        self,
        ref: EnvRef,
        *,
        data_key: bytes,
        key_id: str,
        revisions: list[tuple[str, str, str, str]],
        tags: list[tuple[str, int]],
        at: str,
    ) -> None:
        """Create ``ref`` with whole history at once (clone --preserve-history).

        ``revisions`` are ``(definition, compiled, author, created_at)`` numbered 1.. in order.
        """
        ...

    def delete_environment(self, ref: EnvRef) -> None: ...

    def resolve_tag(self, ref: EnvRef, tag: str) -> int:
        """The revision number ``tag`` points at; ``TagNotFoundError`` otherwise."""
        ...

    def set_tag(self, ref: EnvRef, tag: str, revision: int, *, at: str) -> None:
        """Create or move ``tag``. ``RevisionNotFoundError`` if ``revision`` does not exist."""
        ...

    def delete_tag(self, ref: EnvRef, tag: str) -> None: ...

    def list_tags(self, ref: EnvRef) -> list[TagRecord]: ...

    def list_data_keys(self) -> list[tuple[EnvRef, bytes, str]]:
        """``(env, wrapped data key, key id)`` for every environment."""
        ...

    def replace_data_keys(self, rewrapped: Iterable[tuple[EnvRef, bytes, str]]) -> None:
        """Store re-wrapped data keys, all in one transaction."""
        ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...


def default_sqlite_path(home: Path) -> Path:
    return home / "store.db"


def open_store(url: str | None, home: Path, *, create: bool = False) -> Store:
    """Open the store named by ``url`` (``STRONGROOM_STORE``), or the SQLite file in ``home``.

    ``create=True`` creates the schema (running migrations) when it is missing.
    """
    if url is None or url.startswith("sqlite:"):
        path = default_sqlite_path(home) if url is None else Path(_sqlite_path(url))
        from strongroom.storage.sqlite import SqliteStore

        return SqliteStore.open(path, create=create)
    if url.startswith(("postgresql:", "postgresql+psycopg:", "postgres:")):
        from strongroom.storage.sql import SqlAlchemyStore

        return SqlAlchemyStore.open(url, create=create)
    raise InvalidInputError(
        f"unsupported STRONGROOM_STORE {url.split(':', 1)[0]!r}",
        hint="use postgresql://USER@HOST/DB, or unset STRONGROOM_STORE for the SQLite store",
    )


def _sqlite_path(url: str) -> str:
    # sqlite:///relative/or/absolute like SQLAlchemy: sqlite:////abs/path, sqlite:///rel/path
    rest = url[len("sqlite:") :]
    if rest.startswith("////"):
        return rest[3:]
    if rest.startswith("///"):
        return rest[3:]
    return rest.lstrip("/")

"""The storage seam: a small Protocol every backend implements.

Storage knows nothing of plaintext. It holds environments (with their wrapped
data key), immutable revisions (YAML with ciphertext only), revision tags and a
little store metadata. Every method is atomic: it either happens whole or not at
all.
"""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION", "Store", "open_store"]

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from strongroom.errors import InvalidInputError
from strongroom.model import (
    AuditEvent,
    AuditRecord,
    EnvironmentRecord,
    EnvRef,
    RevisionRecord,
    TagRecord,
    TokenRecord,
)

#: The Alembic head revision this code expects. Bumped with every migration.
SCHEMA_VERSION = "0002"


@runtime_checkable
class Store(Protocol):
    """What the service needs from storage.

    Every method that changes something takes ``audit``: events appended to the audit
    log in the same transaction as the change, so a change is never without its
    record and a failed audit write fails the change (fail-closed).

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
        audit: Sequence[AuditEvent] = (),
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
        audit: Sequence[AuditEvent] = (),
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
        audit: Sequence[AuditEvent] = (),
    ) -> None:
        """Create ``ref`` with whole history at once (clone --preserve-history).

        ``revisions`` are ``(definition, compiled, author, created_at)`` numbered 1.. in order.
        """
        ...

    def delete_environment(self, ref: EnvRef, *, audit: Sequence[AuditEvent] = ()) -> None: ...

    def resolve_tag(self, ref: EnvRef, tag: str) -> int:
        """The revision number ``tag`` points at; ``TagNotFoundError`` otherwise."""
        ...

    def set_tag(self, ref: EnvRef, tag: str, revision: int, *, at: str, audit: Sequence[AuditEvent] = ()) -> None:
        """Create or move ``tag``. ``RevisionNotFoundError`` if ``revision`` does not exist."""
        ...

    def delete_tag(self, ref: EnvRef, tag: str, *, audit: Sequence[AuditEvent] = ()) -> None: ...

    def list_tags(self, ref: EnvRef) -> list[TagRecord]: ...

    def list_data_keys(self) -> list[tuple[EnvRef, bytes, str]]:
        """``(env, wrapped data key, key id)`` for every environment."""
        ...

    def replace_data_keys(
        self,
        rewrapped: Iterable[tuple[EnvRef, bytes, str]],
        *,
        meta: Mapping[str, str] | None = None,
        audit: Sequence[AuditEvent] = (),
    ) -> None:
        """Store re-wrapped data keys and the ``meta`` entries that go with them, all in one transaction."""
        ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    # -- audit log ------------------------------------------------------------------------------

    def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Append events on their own (reads, opens, denials), chained after the newest record."""
        ...

    def list_audit(
        self,
        *,
        environment: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Records in chain order (oldest first) with ``seq > after_seq`` matching every filter given."""
        ...

    def audit_head(self) -> tuple[int, str]:
        """The newest record's number and hash (``(0, GENESIS)`` for an empty log)."""
        ...

    # -- tokens -----------------------------------------------------------------------------------

    def create_token(self, token: TokenRecord, *, audit: Sequence[AuditEvent] = ()) -> None: ...

    def get_token(self, token_id: str) -> TokenRecord | None: ...

    def list_tokens(self) -> list[TokenRecord]: ...

    def revoke_token(self, token_id: str, *, at: str, audit: Sequence[AuditEvent] = ()) -> None:
        """Mark a token revoked. ``NotFoundError`` for an unknown id."""
        ...

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

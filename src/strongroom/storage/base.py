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
    DeliveryRecord,
    EnvironmentRecord,
    EnvRef,
    EnvTagRecord,
    OpenSession,
    RevisionRecord,
    TagRecord,
    TokenRecord,
    WebhookRecord,
)

#: The Alembic head revision this code expects. Bumped with every migration.
SCHEMA_VERSION = "0003"


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

    def swap_meta(self, key: str, expected: str | None, value: str) -> bool:
        """Compare-and-set: write ``value`` only if the entry is ``expected`` now (``None``: absent).

        Atomic across processes (one conditional statement), so it can back a lock: True
        when this call wrote, False when the entry held something else.
        """
        ...

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

    # -- environment tags (key/value labels, not revision tags) -----------------------------------

    def list_env_tags(self, ref: EnvRef) -> list[EnvTagRecord]:
        """Tags ordered by name. ``EnvironmentNotFoundError`` for an unknown environment."""
        ...

    def set_env_tag(
        self,
        ref: EnvRef,
        name: str,
        value: str,
        *,
        at: str,
        actor: str,
        create_only: bool = False,
        expected_value: str | None = None,
        audit: Sequence[AuditEvent] = (),
    ) -> EnvTagRecord:
        """Create or update a tag. ``create_only``: ``AlreadyExistsError`` if it exists.
        ``expected_value``: ``ConflictError`` unless the tag exists with that value; ``TagNotFoundError``
        if it does not exist."""
        ...

    def delete_env_tag(self, ref: EnvRef, name: str, *, audit: Sequence[AuditEvent] = ()) -> None:
        """``TagNotFoundError`` if there is no such tag."""
        ...

    # -- open sessions ------------------------------------------------------------------------------

    def create_open_session(self, session: OpenSession) -> None: ...

    def get_open_session(self, session_id: str) -> OpenSession | None: ...

    def delete_expired_sessions(self, now: str) -> int:
        """Remove sessions whose ``expires_at`` is at or before ``now``; returns how many."""
        ...

    # -- webhooks -----------------------------------------------------------------------------------

    def create_webhook(self, hook: WebhookRecord, *, audit: Sequence[AuditEvent] = ()) -> None: ...

    def list_webhooks(self) -> list[WebhookRecord]: ...

    def delete_webhook(self, webhook_id: str, *, audit: Sequence[AuditEvent] = ()) -> None:
        """``NotFoundError`` for an unknown id; its deliveries go too."""
        ...

    def enqueue_deliveries(
        self,
        webhook_id: str,
        deliveries: Sequence[tuple[int, str, str]],
        *,
        expected_last_seq: int,
        new_last_seq: int,
        at: str,
    ) -> bool:
        """Queue ``(audit_seq, event, payload)`` deliveries and move the webhook's cursor, atomically.

        Returns ``False`` (and writes nothing) if the cursor is no longer ``expected_last_seq``
        (another dispatcher got there first).
        """
        ...

    def due_deliveries(self, now: str, *, limit: int = 100) -> list[DeliveryRecord]:
        """Pending deliveries whose ``next_attempt_at`` is at or before ``now``, oldest first."""
        ...

    def claim_delivery(self, delivery_id: int, *, now: str, lease_until: str) -> bool:
        """Take a due delivery for one attempt (sets ``next_attempt_at`` to ``lease_until``).

        ``False`` if it is no longer pending and due: another process took it.
        """
        ...

    def record_delivery_attempt(
        self,
        delivery_id: int,
        *,
        status: str,
        attempts: int,
        next_attempt_at: str,
        last_status: int | None,
        last_error: str | None,
        at: str,
    ) -> None: ...

    def list_deliveries(self, *, webhook_id: str | None = None, limit: int = 100) -> list[DeliveryRecord]:
        """The newest deliveries first."""
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

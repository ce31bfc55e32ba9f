"""What one server app holds: its configuration, store, key cache, clock, metrics and limiter.

``create_app`` builds one :class:`ServerState` and hangs it on ``app.state``; nothing
here is module-level, so two apps in one process share nothing.
"""

from __future__ import annotations

__all__ = ["AuditCountingStore", "KeyringCache", "ServerState", "client_address", "server_state"]

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import Request

from strongroom.errors import StoreUnavailableError
from strongroom.model import AuditEvent, AuditRecord

if TYPE_CHECKING:
    from strongroom.crypto.providers import Keyring
    from strongroom.server.auth import FailureLimiter
    from strongroom.server.config import ServerConfig
    from strongroom.server.metrics import Metrics
    from strongroom.service import CompiledCache
    from strongroom.storage.base import Store


class KeyringCache:
    """Loads the master keyring once, on first use, and keeps it; a failed load is retried next time."""

    def __init__(self, load: Callable[[Store], Keyring]) -> None:
        self._load = load
        self._keyring: Keyring | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyringCache(loaded={self._keyring is not None})"

    def __call__(self, store: Store) -> Keyring:
        with self._lock:
            if self._keyring is None:
                self._keyring = self._load(store)
            return self._keyring


class AuditCountingStore:
    """A store that counts audit appends failing with ``StoreUnavailableError`` (the metric
    ``strongroom_audit_write_failures_total``); everything else goes straight to the store."""

    def __init__(self, store: Store, on_failure: Callable[[], None]) -> None:
        self._store = store
        self._on_failure = on_failure

    def __repr__(self) -> str:
        return repr(self._store)

    def append_audit(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        try:
            return self._store.append_audit(events)
        except StoreUnavailableError:
            self._on_failure()
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _compiled_cache() -> CompiledCache:
    from strongroom.service import CompiledCache

    return CompiledCache()


@dataclass(slots=True)
class ServerState:
    """Everything the routes of one app share. ``store`` is set by the lifespan (or given by the caller)."""

    config: ServerConfig
    clock: Callable[[], datetime]
    metrics: Metrics
    limiter: FailureLimiter
    keyring: KeyringCache
    store: Store | None = None
    #: The store as routes see it (audit failures counted); set together with ``store``.
    service_store: Store | None = None
    #: True when the app opened the store from the configuration (and so closes it).
    owns_store: bool = False
    #: Compiled revisions, decoded once per process (revisions never change).
    compiled: CompiledCache = field(default_factory=_compiled_cache)

    def attach(self, store: Store, *, owned: bool) -> None:
        self.store = store
        self.service_store = cast("Store", AuditCountingStore(store, self.metrics.audit_write_failures.inc))
        self.owns_store = owned

    def detach(self) -> Store | None:
        store, self.store, self.service_store = self.store, None, None
        return store

    def require_store(self) -> Store:
        if self.service_store is None:
            raise StoreUnavailableError("the server has no store open (it is starting or stopping)")
        return self.service_store


def server_state(request: Request) -> ServerState:
    """The :class:`ServerState` of the app serving ``request``."""
    state: ServerState = request.app.state.strongroom
    return state


def client_address(request: Request) -> str:
    """The peer address (behind a proxy: what uvicorn's ``--proxy-headers`` made of ``X-Forwarded-For``)."""
    return request.client.host if request.client is not None else "unknown"

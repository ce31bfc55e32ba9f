"""Run a Strongroom server over real HTTP for tests: uvicorn in a thread on ``127.0.0.1:<ephemeral>``.

The same approach as :class:`strongroom.testing.github_api.GitHubAPIServer`::

    store, load_keyring = new_store(tmp_path, master_key)
    admin = make_token(store, load_keyring, "admin", "admin")
    with StrongroomServer(create_app(config, store=store, load_keyring=load_keyring)) as server:
        httpx.get(f"{server.url}/api/esc/environments/default", headers={"Authorization": f"token {admin}"})

Nothing here is used by the server itself.
"""

from __future__ import annotations

__all__ = ["Harness", "StrongroomServer", "make_token", "new_store", "running_server"]

import base64
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import httpx

from strongroom.server.config import ServerConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

    from strongroom.crypto.providers import Keyring
    from strongroom.service import Service
    from strongroom.storage.base import Store


def new_store(home: Path, master_key_b64: str, *, url: str | None = None) -> tuple[Store, Callable[[Store], Keyring]]:
    """A new store (SQLite in ``home``, or the database at ``url``) bound to a base64 master key,
    and a loader of that key."""
    from strongroom.crypto.providers import EnvironmentKeyProvider
    from strongroom.service import Service
    from strongroom.storage.base import open_store

    def load(_store: Store) -> Keyring:
        return EnvironmentKeyProvider(master_key_b64).load()

    store = open_store(url, home, create=True)
    Service(store, load_keyring=load, actor="setup").initialise_keys()
    return store, load


def make_token(
    store: Store,
    load_keyring: Callable[[Store], Keyring],
    name: str,
    role: str,
    scopes: tuple[str, ...] = (),
    expires_in: timedelta | None = None,
) -> str:
    """Create an API token directly in the store (as ``strongroom token create`` does); returns it."""
    from strongroom.service import Service

    _record, token = Service(store, load_keyring=load_keyring, actor="setup").create_token(
        name, role, scopes, expires_in
    )
    return token


class StrongroomServer:
    """Serves an app under uvicorn in a background thread; use as a context manager.

    ``access_log`` turns on uvicorn's access log (to the ``uvicorn.access`` logger), so a
    test can check what it would write.
    """

    def __init__(self, app: FastAPI, *, access_log: bool = False, startup_timeout: float = 10.0) -> None:
        from strongroom.testing._uvicorn import ThreadedServer

        self.app = app
        self._startup_timeout = startup_timeout
        self._runner = ThreadedServer(app, name="Strongroom test server", lifespan="on", access_log=access_log)

    @property
    def url(self) -> str:
        if self._runner.url is None:
            raise RuntimeError("the Strongroom test server is not running")
        return self._runner.url

    def start(self) -> Self:
        self._runner.start(self._startup_timeout)
        return self

    def stop(self) -> None:
        self._runner.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class Harness:
    """A running server over its own store, with helpers to make tokens, clients and snapshots."""

    store: Store
    load_keyring: Callable[[Store], Keyring]
    config: ServerConfig
    server: StrongroomServer
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def app(self) -> FastAPI:
        return self.server.app

    def token(self, name: str, role: str, scopes: tuple[str, ...] = (), expires_in: timedelta | None = None) -> str:
        return make_token(self.store, self.load_keyring, name, role, scopes, expires_in)

    def client(self, token: str | None = None, *, scheme: str = "token") -> httpx.Client:
        headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=30.0)
        self.clients.append(client)
        return client

    def service(self, actor: str = "setup") -> Service:
        """A local service (all rights) over the server's store, for setting up and inspecting."""
        from strongroom.service import Service

        return Service(self.store, load_keyring=self.load_keyring, actor=actor)

    def snapshot(self) -> dict[str, object]:
        """Everything a request could change except the audit log: environments, revisions, tags, tokens."""
        state: dict[str, object] = {}
        for env in self.store.list_environments():
            revisions = [(r.number, r.definition) for r in self.store.list_revisions(env.ref)]
            tags = [(t.name, t.revision) for t in self.store.list_tags(env.ref)]
            env_tags = [(t.name, t.value) for t in self.store.list_env_tags(env.ref)]
            state[str(env.ref)] = (env.latest_revision, revisions, tags, env_tags)
        state["tokens"] = [(t.token_id, t.revoked_at) for t in self.store.list_tokens()]
        return state

    def close(self) -> None:
        for client in self.clients:
            client.close()


@contextlib.contextmanager
def running_server(
    home: Path,
    *,
    master_key: str | None = None,
    access_log: bool = False,
    config: ServerConfig | None = None,
    store_url: str | None = None,
    **settings: object,
) -> Iterator[Harness]:
    """A new store in ``home`` (or at ``store_url``) and a server over it; ``settings`` override
    :class:`ServerConfig` fields."""
    from strongroom.server.app import create_app

    key = master_key or base64.b64encode(os.urandom(32)).decode("ascii")
    store, load = new_store(home, key, url=store_url)
    base = config if config is not None else ServerConfig(home=home)
    cfg = replace(base, **settings)  # type: ignore[arg-type]
    server = StrongroomServer(create_app(cfg, store=store, load_keyring=load), access_log=access_log)
    harness = Harness(store, load, cfg, server)
    try:
        with server:
            yield harness
    finally:
        harness.close()
        store.close()

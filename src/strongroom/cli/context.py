"""Wires the CLI to a service from the process environment: home, store, master key, actor."""

from __future__ import annotations

__all__ = ["AppContext"]

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strongroom.crypto.providers import KeyProvider, Keyring
    from strongroom.service import Service
    from strongroom.storage.base import Store


class AppContext:
    """Everything a command needs, built lazily so a command pays only for what it uses."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.home = Path(environ.get("STRONGROOM_HOME") or Path.home() / ".strongroom").expanduser()
        self.store_url = environ.get("STRONGROOM_STORE") or None
        self._service: Service | None = None

    @classmethod
    def from_os(cls) -> AppContext:
        return cls(os.environ)

    @property
    def actor(self) -> str:
        name = self.environ.get("STRONGROOM_ACTOR") or self.environ.get("USER") or self.environ.get("LOGNAME")
        if not name:
            import pwd

            try:
                name = pwd.getpwuid(os.getuid()).pw_name
            except KeyError:
                name = f"uid:{os.getuid()}"
        return name

    def key_provider(self, store: Store) -> KeyProvider:
        from strongroom.crypto.providers import provider_from_environment
        from strongroom.service import META_KDF_PARAMS

        return provider_from_environment(self.environ, self.home, store.get_meta(META_KDF_PARAMS))

    def _load_keyring(self, store: Store) -> Keyring:
        return self.key_provider(store).load()

    def open_store(self, *, create: bool = False) -> Store:
        from strongroom.storage.base import open_store

        return open_store(self.store_url, self.home, create=create)

    @property
    def remote_url(self) -> str | None:
        return self.environ.get("STRONGROOM_URL") or None

    def service(self) -> Service:
        """The local service, or (with ``STRONGROOM_URL``) a client of a server that reads the same."""
        if self._service is None:
            if self.remote_url:
                from strongroom.client import RemoteService

                self._service = RemoteService(self.remote_url, self.environ.get("STRONGROOM_TOKEN"))  # type: ignore[assignment]
            else:
                from strongroom.providers import ProviderRegistry
                from strongroom.service import Service

                self._service = Service(
                    self.open_store(),
                    load_keyring=self._load_keyring,
                    actor=self.actor,
                    providers=ProviderRegistry(self.environ),
                )
        assert self._service is not None
        return self._service

    def close(self) -> None:
        if self._service is not None:
            self._service.close()
            self._service = None

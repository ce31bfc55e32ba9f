"""Providers for ``fn::open``: the built-in ``env`` provider and plug-ins found by entry point.

Plug-ins register in the entry-point group ``strongroom.providers``; each entry point
names a class (or factory) called with no arguments that returns an object with the
:class:`~strongroom.language.Provider` shape. Nothing is looked up until a definition
actually calls ``fn::open``, and a plug-in that fails to load is logged and skipped,
never fatal (as keyring treats its backends).
"""

from __future__ import annotations

__all__ = ["ENTRY_POINT_GROUP", "EnvironmentVariableProvider", "ProviderRegistry"]

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from strongroom.model import Secret

ENTRY_POINT_GROUP = "strongroom.providers"
_log = logging.getLogger(__name__)


class ProviderError(Exception):
    """A provider's failure; its message becomes a diagnostic at the ``fn::open`` call."""


class EnvironmentVariableProvider:
    """``fn::open::env``: a value from the environment of the process that evaluates.

    Useful in CI, where the runner already injects a credential (``GITHUB_TOKEN``) that a
    definition wants to use or project. Inputs: ``name`` (required), ``default`` (used when
    the variable is unset) and ``secret`` (default ``true``: the value is a secret).

    The server does not offer it unless ``STRONGROOM_SERVER_ENV_PROVIDER=1``: there, the
    environment is the server's own, not the caller's.
    """

    schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "default": {"type": "string"},
            "secret": {"type": "boolean"},
        },
        "required": ["name"],
        "additionalProperties": False,
    }

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __repr__(self) -> str:
        return "EnvironmentVariableProvider()"

    def open(self, inputs: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        name = str(inputs["name"])
        value = self._environ.get(name)
        if value is None:
            if "default" not in inputs:
                raise ProviderError(f"the environment variable {name} is not set; set it, or give a default")
            value = str(inputs["default"])
        return Secret(value) if inputs.get("secret", True) else value


class ProviderRegistry(Mapping[str, Any]):
    """The providers an evaluation may open: built-ins plus entry points, loaded on first use."""

    def __init__(self, environ: Mapping[str, str], *, allow_environment: bool = True) -> None:
        self._environ = environ
        self._allow_environment = allow_environment
        self._loaded: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return "ProviderRegistry()"

    def _load(self) -> dict[str, Any]:
        if self._loaded is None:
            found: dict[str, Any] = {}
            if self._allow_environment:
                found["env"] = EnvironmentVariableProvider(self._environ)
            from importlib.metadata import entry_points

            for entry in entry_points(group=ENTRY_POINT_GROUP):
                if entry.name in found:
                    continue
                try:
                    found[entry.name] = entry.load()()
                except Exception as exc:  # a broken plug-in must not break every evaluation
                    _log.warning("provider plug-in %s could not be loaded: %s", entry.name, type(exc).__name__)
            self._loaded = found
        return self._loaded

    def __getitem__(self, name: str) -> Any:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

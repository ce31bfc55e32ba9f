"""The seams evaluation is given: providers (``fn::open``), rotators (``fn::rotate``) and the loader.

Nothing here is registered globally: the caller passes a mapping of name -> object.
"""

from __future__ import annotations

__all__ = ["LoadError", "Provider", "ProviderOutput", "Rotator"]

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class LoadError(Exception):
    """Raised by ``evaluate``'s ``load`` callback when an environment cannot be read.

    The message (say what is wrong: not found, or not allowed) becomes a diagnostic
    at the import or reference that asked for it.
    """


@dataclass(frozen=True, slots=True)
class ProviderOutput:
    """What a provider may return instead of plain data: the value, and whether all of it is secret."""

    value: Any
    secret: bool = False


class Provider(Protocol):
    """A provider for ``fn::open::NAME``.

    ``schema`` is a JSON Schema for the inputs, or ``None`` to accept anything; inputs
    that fail it are reported and ``open`` is not called. ``open`` receives plain data
    (secrets in plaintext) and the execution context, and returns plain JSON-like
    data in which ``model.Secret`` leaves are secrets, or a ``ProviderOutput``.
    An exception it raises becomes a diagnostic (its message is withheld when the
    inputs hold secrets).
    """

    @property
    def schema(self) -> Mapping[str, Any] | bool | None: ...

    def open(self, inputs: Mapping[str, Any], context: Mapping[str, Any]) -> Any: ...


class Rotator(Protocol):
    """A rotator for ``fn::rotate::NAME``; evaluation only opens it (rotation is the rotate command's).

    Properties of ``inputs_schema`` marked ``"rotateOnly": true`` are neither evaluated
    nor passed when opening. ``state_schema`` checks the ``state`` (which may be null).
    """

    @property
    def inputs_schema(self) -> Mapping[str, Any] | bool | None: ...

    @property
    def state_schema(self) -> Mapping[str, Any] | bool | None: ...

    def open(self, inputs: Mapping[str, Any], state: Mapping[str, Any] | None, context: Mapping[str, Any]) -> Any: ...

    def rotate(
        self, inputs: Mapping[str, Any], state: Mapping[str, Any] | None, context: Mapping[str, Any]
    ) -> Mapping[str, Any]: ...

"""The JSON forms shared by the server's native API and the remote CLI client.

Evaluated values travel with where each was defined, so `env get` against a server
prints exactly what it prints locally. A secret's plaintext is only ever put on the
wire when the caller asked to reveal it (and the service allowed it).
"""

from __future__ import annotations

__all__ = [
    "RemoteEvaluation",
    "RemoteRevision",
    "RemoteValue",
    "decode_diagnostic",
    "decode_value",
    "encode_diagnostic",
    "encode_value",
]

from dataclasses import dataclass
from typing import Any

from strongroom.errors import Diagnostic


def encode_value(v: Any, reveal: bool, inherited: bool = False) -> dict[str, Any]:
    """An evaluated value (``language.EvalValue``) as JSON; secret leaves keep no plaintext unless ``reveal``."""
    secret = bool(v.secret) or inherited
    out: dict[str, Any] = {"s": secret, "u": bool(v.unknown), "e": v.env, "l": v.line, "c": v.column}
    if isinstance(v.value, dict):
        out["o"] = {k: encode_value(c, reveal, secret) for k, c in v.value.items()}
    elif isinstance(v.value, list):
        out["a"] = [encode_value(c, reveal, secret) for c in v.value]
    elif secret and not reveal:
        out["v"], out["u"] = None, True
    else:
        out["v"] = v.value
    return out


class RemoteValue:
    """An evaluated value received from a server; it reads like ``language.EvalValue``."""

    __slots__ = ("column", "env", "line", "secret", "unknown", "value")

    def __init__(
        self, value: Any, secret: bool, unknown: bool, env: str | None, line: int | None, column: int | None
    ) -> None:
        self.value = value
        self.secret = secret
        self.unknown = unknown
        self.env = env
        self.line = line
        self.column = column

    @property
    def where(self) -> str:
        out = self.env or "<context>"
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out

    def get(self, key: str | int) -> RemoteValue | None:
        if isinstance(self.value, dict) and isinstance(key, str):
            return self.value.get(key)
        if isinstance(self.value, list) and isinstance(key, int) and 0 <= key < len(self.value):
            return self.value[key]  # type: ignore[no-any-return]
        return None

    def __repr__(self) -> str:
        return f"RemoteValue(@ {self.where})"


def decode_value(data: dict[str, Any]) -> RemoteValue:
    value: Any
    if "o" in data:
        value = {k: decode_value(c) for k, c in data["o"].items()}
    elif "a" in data:
        value = [decode_value(c) for c in data["a"]]
    else:
        value = data.get("v")
    return RemoteValue(value, bool(data.get("s")), bool(data.get("u")), data.get("e"), data.get("l"), data.get("c"))


def encode_diagnostic(d: Diagnostic) -> dict[str, Any]:
    return {
        "message": d.message,
        "severity": d.severity,
        "environment": d.environment,
        "line": d.line,
        "column": d.column,
        "path": d.path,
    }


def decode_diagnostic(data: dict[str, Any]) -> Diagnostic:
    return Diagnostic(
        message=str(data.get("message", "")),
        severity=str(data.get("severity", "error")),
        environment=data.get("environment"),
        line=data.get("line"),
        column=data.get("column"),
        path=data.get("path"),
    )


@dataclass(frozen=True, slots=True)
class _RemoteDiagnostic:
    """A diagnostic as ``Evaluation.diagnostics`` holds them (``is_error``, ``to_diagnostic()``)."""

    diagnostic: Diagnostic

    @property
    def is_error(self) -> bool:
        return self.diagnostic.severity == "error"

    def to_diagnostic(self) -> Diagnostic:
        return self.diagnostic


@dataclass(frozen=True, slots=True)
class RemoteEvaluation:
    """The parts of an evaluation the CLI reads, as sent by a server."""

    value: RemoteValue
    diagnostics: tuple[_RemoteDiagnostic, ...]
    variables: dict[str, Any]
    variable_diagnostics: tuple[Diagnostic, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RemoteEvaluation:
        from strongroom.model import Secret

        variables: dict[str, Any] = {}
        for name, item in (data.get("variables") or {}).items():
            variables[name] = Secret(item.get("value")) if item.get("secret") else item.get("value")
        return cls(
            value=decode_value(data["value"]),
            diagnostics=tuple(_RemoteDiagnostic(decode_diagnostic(d)) for d in data.get("diagnostics", [])),
            variables=variables,
            variable_diagnostics=tuple(decode_diagnostic(d) for d in data.get("variable_diagnostics", [])),
        )


@dataclass(frozen=True, slots=True)
class RemoteRevision:
    """What a write returns: the new revision's number and any warnings about the definition."""

    number: int
    created_at: str = ""
    author: str = ""
    definition: str = ""
    warnings: tuple[Diagnostic, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RemoteRevision:
        return cls(
            number=int(data["number"]),
            created_at=str(data.get("created_at", "")),
            author=str(data.get("author", "")),
            definition=str(data.get("definition", "")),
            warnings=tuple(decode_diagnostic(d) for d in data.get("warnings", [])),
        )

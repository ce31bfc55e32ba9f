"""Diagnostics of the environment language: what is wrong, where, and what to do.

``LangDiagnostic`` is richer than ``strongroom.errors.Diagnostic``: it keeps the
ESC-comparable ``summary`` apart from the ``hint`` (what to do), and its ``path``
is a document path such as ``values.a.b`` or ``imports[0]``. ``to_diagnostic()``
converts it for the rest of Strongroom. A secret value never goes into either text.
"""

from __future__ import annotations

__all__ = [
    "ERROR",
    "WARNING",
    "LangDiagnostic",
    "did_you_mean",
    "kind_name",
]

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from strongroom.errors import Diagnostic

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class LangDiagnostic:
    """One problem found while compiling or evaluating a definition."""

    summary: str
    severity: str = ERROR
    environment: str | None = None
    line: int | None = None
    column: int | None = None
    path: str = ""
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    @property
    def message(self) -> str:
        """The summary followed by what to do."""
        return f"{self.summary}; {self.hint}" if self.hint else self.summary

    def to_diagnostic(self) -> Diagnostic:
        return Diagnostic(
            message=self.message,
            severity=self.severity,
            environment=self.environment,
            line=self.line,
            column=self.column,
            path=self.path or None,
        )

    def __str__(self) -> str:
        return str(self.to_diagnostic())

    def to_json(self) -> list[Any]:
        return [self.summary, self.severity, self.environment, self.line, self.column, self.path, self.hint]

    @classmethod
    def from_json(cls, data: list[Any]) -> LangDiagnostic:
        summary, severity, environment, line, column, path, hint = data
        return cls(summary, severity, environment, line, column, path, hint)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``word`` (difflib), if one is close enough."""
    matches = difflib.get_close_matches(word, [c for c in candidates if c != word], n=1)
    return matches[0] if matches else None


def kind_name(value: Any) -> str:
    """The JSON type name ESC uses in messages: null, boolean, number, string, array, object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    return "object"

"""Strongroom's results in the JSON of Pulumi ESC's API: values, traces and diagnostics.

An evaluated value (:class:`~strongroom.language.values.EvalValue`) becomes ESC's
``Value``: ``{"value", "secret", "unknown", "trace": {"def": Range}}``, where an
object's ``value`` maps keys to ``Value`` s and an array's is a list of them.
``secret`` and ``unknown`` appear only when true, as ESC writes them. Positions are
the line and column where the value is written; Strongroom does not keep byte
offsets or end positions, so ``byte`` is 0 and ``end`` repeats ``begin``.

When values are not revealed (``yaml/check``), a secret (or anything inside a
secret) is written ``{"value": null, "secret": true, "unknown": true}``: its
plaintext never leaves the server.
"""

from __future__ import annotations

__all__ = ["diagnostic_json", "diagnostics_json", "properties_json", "range_json", "value_json"]

from collections.abc import Iterable
from typing import Any

from strongroom.errors import Diagnostic
from strongroom.language.values import EvalValue


def _pos(line: int, column: int) -> dict[str, int]:
    return {"line": line, "column": column, "byte": 0}


def range_json(environment: str | None, line: int | None, column: int | None) -> dict[str, Any] | None:
    """ESC's ``Range`` for a position, or ``None`` when the position is not known."""
    if environment is None or line is None:
        return None
    begin = _pos(line, column if column is not None else 1)
    return {"environment": environment, "begin": begin, "end": dict(begin)}


def diagnostic_json(diag: Diagnostic, *, rename: dict[str, str] | None = None) -> dict[str, Any]:
    """ESC's ``EnvironmentDiagnostic``: ``summary``, ``path``, ``range`` (and Strongroom's ``severity``)."""
    environment = diag.environment
    if environment is not None and rename:
        environment = rename.get(environment, environment)
    out: dict[str, Any] = {"summary": diag.message, "severity": diag.severity}
    if diag.path:
        out["path"] = diag.path
    where = range_json(environment, diag.line, diag.column)
    if where is not None:
        out["range"] = where
    return out


def diagnostics_json(diags: Iterable[Diagnostic], *, rename: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [diagnostic_json(d, rename=rename) for d in diags]


def _trace(v: EvalValue, rename: dict[str, str] | None) -> dict[str, Any]:
    environment = v.env if v.env is None or not rename else rename.get(v.env, v.env)
    where = range_json(environment, v.line, v.column)
    return {} if where is None else {"def": where}


def value_json(
    v: EvalValue, *, reveal: bool, inherited_secret: bool = False, rename: dict[str, str] | None = None
) -> dict[str, Any]:
    """ESC's ``Value`` for ``v``; secrets in plaintext only when ``reveal``. ``rename`` maps environment
    names in traces (the anonymous environment of ``yaml/check``)."""
    secret = v.secret or inherited_secret
    out: dict[str, Any] = {"value": None}
    if secret and not reveal:
        out.update(secret=True, unknown=True)
    elif v.unknown:
        out["unknown"] = True
        if secret:
            out["secret"] = True
    else:
        value = v.value
        if isinstance(value, dict):
            out["value"] = {
                k: value_json(c, reveal=reveal, inherited_secret=secret, rename=rename) for k, c in value.items()
            }
        elif isinstance(value, list):
            out["value"] = [value_json(c, reveal=reveal, inherited_secret=secret, rename=rename) for c in value]
        else:
            out["value"] = value
        if secret:
            out["secret"] = True
    out["trace"] = _trace(v, rename)
    return out


def properties_json(
    root: EvalValue, *, reveal: bool, rename: dict[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """ESC's ``properties``: the top-level values of an environment, each a ``Value``."""
    if not isinstance(root.value, dict):
        return {}
    return {k: value_json(c, reveal=reveal, inherited_secret=root.secret, rename=rename) for k, c in root.value.items()}

"""Projections of an evaluated environment: ``environmentVariables``, ``files`` and ``pulumiConfig``.

Each returns a ``Projection``: a read-only mapping of name -> ``Projected`` plus the
diagnostics found (a value that cannot be projected is left out and reported).
"""

from __future__ import annotations

__all__ = [
    "Projected",
    "Projection",
    "project_environment_variables",
    "project_files",
    "project_pulumi_config",
]

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from strongroom.language.diagnostics import ERROR, LangDiagnostic
from strongroom.language.evaluation import Evaluation
from strongroom.language.paths import format_path
from strongroom.language.values import EvalValue, kind_of

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Projected(NamedTuple):
    """One projected entry: its text (``None`` when the plaintext is not available), secrecy and value."""

    text: str | None
    secret: bool
    value: EvalValue


@dataclass(frozen=True)
class Projection(Mapping[str, Projected]):
    """A projection's entries (in definition order) and what could not be projected."""

    entries: dict[str, Projected] = field(default_factory=dict)
    diagnostics: tuple[LangDiagnostic, ...] = ()

    def __getitem__(self, key: str) -> Projected:
        return self.entries[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def _diag(ev: Evaluation, v: EvalValue | None, path: tuple[str, ...], summary: str, hint: str) -> LangDiagnostic:
    return LangDiagnostic(
        summary,
        ERROR,
        (v.env if v is not None and v.env else ev.environment),
        v.line if v is not None else None,
        v.column if v is not None else None,
        format_path(path, "values"),
        hint,
    )


def _scalar_text(v: EvalValue) -> str | None:
    value = v.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value)) if abs(value) < 1e16 else repr(value)
    if isinstance(value, str):
        return value
    return None


def _strings(ev: Evaluation, section: str, what: str) -> Projection:
    root = ev.value.get(section)
    if root is None:
        return Projection()
    if root.unknown or not isinstance(root.value, dict):
        kind = "unknown" if root.unknown else kind_of(root)
        return Projection(
            diagnostics=(
                _diag(
                    ev,
                    root,
                    (section,),
                    f"{section} must be an object, not {kind}",
                    f"write {section}: {{NAME: value}}",
                ),
            )
        )
    entries: dict[str, Projected] = {}
    diags: list[LangDiagnostic] = []
    for name, v in root.value.items():
        path = (section, name)
        if not _ENV_NAME.match(name):
            diags.append(
                _diag(
                    ev,
                    v,
                    path,
                    f'"{name}" is not a valid environment variable name',
                    "use letters, digits and _, not starting with a digit",
                )
            )
            continue
        if v.unknown:
            if v.secret:
                entries[name] = Projected(None, True, v)
            else:
                diags.append(
                    _diag(ev, v, path, f"{what} {name} could not be evaluated", "fix the errors reported for it")
                )
            continue
        text = _scalar_text(v)
        if text is None:
            diags.append(
                _diag(
                    ev,
                    v,
                    path,
                    f"{what} {name} must be a string, number or boolean, not {kind_of(v)}",
                    "use fn::toJSON or fn::toString to turn it into a string",
                )
            )
            continue
        entries[name] = Projected(text, v.secret, v)
    return Projection(entries, tuple(diags))


def project_environment_variables(ev: Evaluation) -> Projection:
    """``values.environmentVariables``: names to strings (numbers and booleans as text)."""
    return _strings(ev, "environmentVariables", "environment variable")


def project_files(ev: Evaluation) -> Projection:
    """``values.files``: environment variable names to file contents (the runner writes temp files)."""
    return _strings(ev, "files", "file")


def project_pulumi_config(ev: Evaluation) -> Projection:
    """``values.pulumiConfig``: configuration keys to values of any type (``text`` for scalars only)."""
    root = ev.value.get("pulumiConfig")
    if root is None:
        return Projection()
    if root.unknown or not isinstance(root.value, dict):
        kind = "unknown" if root.unknown else kind_of(root)
        return Projection(
            diagnostics=(
                _diag(
                    ev,
                    root,
                    ("pulumiConfig",),
                    f"pulumiConfig must be an object, not {kind}",
                    'write pulumiConfig: {"namespace:key": value}',
                ),
            )
        )
    entries: dict[str, Projected] = {}
    diags: list[LangDiagnostic] = []
    for key, v in root.value.items():
        if v.unknown and not v.secret:
            diags.append(
                _diag(
                    ev,
                    v,
                    ("pulumiConfig", key),
                    f"pulumi config {key} could not be evaluated",
                    "fix the errors reported for it",
                )
            )
            continue
        entries[key] = Projected(None if v.unknown else _scalar_text(v), v.secret or v.has_secret, v)
    return Projection(entries, tuple(diags))

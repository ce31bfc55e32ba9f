"""``Evaluation``: what ``evaluate`` returns, and its renderings."""

from __future__ import annotations

__all__ = ["Evaluation"]

import json
from collections.abc import Callable
from typing import Any

from strongroom.language.diagnostics import LangDiagnostic
from strongroom.language.paths import Path, parse_path
from strongroom.language.values import EvalValue, render


class Evaluation:
    """The result of ``evaluate``: the root value (an object) and the diagnostics of evaluation.

    ``diagnostics`` holds what evaluation found, including the compile diagnostics of
    imported environments; the root's own compile diagnostics stay in its ``Compiled``.
    ``masked`` is true when evaluation ran without decrypting (``decrypt=None``).
    """

    __slots__ = ("diagnostics", "environment", "masked", "value")

    def __init__(
        self, environment: str, value: EvalValue, diagnostics: tuple[LangDiagnostic, ...], masked: bool
    ) -> None:
        self.environment = environment
        self.value = value
        self.diagnostics = diagnostics
        self.masked = masked

    def __repr__(self) -> str:
        return (
            f"Evaluation(environment={self.environment!r}, diagnostics={len(self.diagnostics)}, masked={self.masked})"
        )

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def to_plain(self, reveal: bool) -> Any:
        """JSON-able values: secrets ``"[secret]"`` (plaintext when ``reveal``), unknowns ``"[unknown]"``."""
        return render(self.value, reveal, self.masked)

    def to_python(self, secret_factory: Callable[[str | None], Any] | None = None) -> Any:
        """Plain data with each secret leaf wrapped by ``secret_factory`` (default ``model.Secret``).

        Leaves inside a secret list or object are wrapped too; a secret number or boolean
        is wrapped as its JSON text. A secret whose plaintext is not available (masked, or
        undecryptable) is passed ``None``; unknown values that are not secret become ``None``.
        """
        if secret_factory is None:
            from strongroom.model import Secret

            factory: Callable[[str | None], Any] = Secret
        else:
            factory = secret_factory
        return _python(self.value, factory, False)

    def get(self, path: Path | str) -> EvalValue | None:
        """The value at a path below ``values`` (``a.b[0]``), or ``None``."""
        keys = parse_path(path) if isinstance(path, str) else path
        v: EvalValue | None = self.value
        for key in keys:
            if v is None:
                return None
            v = v.get(key)
        return v


def _python(v: EvalValue, factory: Callable[[str | None], Any], inherited: bool) -> Any:
    secret = inherited or v.secret
    if v.unknown:
        return factory(None) if secret else None
    value = v.value
    if isinstance(value, dict):
        return {k: _python(c, factory, secret) for k, c in value.items()}
    if isinstance(value, list):
        return [_python(c, factory, secret) for c in value]
    if secret:
        return factory(value if isinstance(value, str) else json.dumps(value))
    return value

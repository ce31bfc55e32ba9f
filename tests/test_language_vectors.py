"""Strongroom's own semantic vectors for the language, as data: tests/vectors/language/*.yaml.

Each vector holds:

- ``definition``: the root environment's YAML (named ``environment``, default ``test/root``);
- ``imports`` (optional): environment name as written -> YAML, served by the loader
  (``aliases`` maps a name as written to another, e.g. a tag to a revision);
- ``secrets`` (optional): ciphertext token -> plaintext, for the decrypt callback;
  ``masked: true`` evaluates without decrypting;
- ``context`` (optional): the execution context (default: ``pulumi.user.id`` = ``USER_123``);
- ``limits`` (optional): ``Limits`` fields to lower for this vector;
- ``expected``: the values, secrets revealed; ``expected_redacted`` (optional): secrets hidden
  (``"<string of N>"``/``"<list of N>"`` match any string/list of that length);
- ``diagnostics``: every diagnostic expected from compiling and evaluating, each
  ``{path, severity, message}`` (``message`` a substring of summary and hint; optional
  ``environment``); nothing else may be reported;
- ``projections`` (optional): ``environmentVariables``/``files`` -> ``{NAME: [text, secret]}``,
  ``pulumiConfig`` -> ``{KEY: secret}``, and ``projection_diagnostics`` like ``diagnostics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strongroom.language import (
    Compiled,
    LangDiagnostic,
    Limits,
    LoadError,
    ProviderOutput,
    compile_definition,
    evaluate,
    project_environment_variables,
    project_files,
    project_pulumi_config,
)

VECTORS = Path(__file__).parent / "vectors" / "language"
DEFAULT_CONTEXT = {"pulumi": {"user": {"id": "USER_123"}}}


def _load_yaml(path: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML

    data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: a vector is a mapping"
    return data


class _Test:
    schema = None

    def open(self, inputs: Any, context: Any) -> Any:
        return inputs


class _SecretWrapper:
    schema = None

    def open(self, inputs: Any, context: Any) -> Any:
        return ProviderOutput(inputs, secret=True)


class _Error:
    schema = {"type": "object", "properties": {"why": {"type": "string"}}, "required": ["why"]}

    def open(self, inputs: Any, context: Any) -> Any:
        raise RuntimeError(inputs["why"])


class _Counter:
    """Returns how many times it has been opened (in this evaluation): proves imports evaluate once."""

    schema = None

    def __init__(self) -> None:
        self.count = 0

    def open(self, inputs: Any, context: Any) -> Any:
        self.count += 1
        return self.count


class _Context:
    """Returns the execution context it is given."""

    schema = None

    def open(self, inputs: Any, context: Any) -> Any:
        return dict(context)


class _Port:
    """Declares an input schema: a port number between 1 and 65535."""

    schema = {
        "type": "object",
        "properties": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}},
        "required": ["port"],
    }

    def open(self, inputs: Any, context: Any) -> Any:
        return {"url": f"http://localhost:{inputs['port']}"}


def providers() -> dict[str, Any]:
    return {
        "test": _Test(),
        "secret-wrapper": _SecretWrapper(),
        "error": _Error(),
        "counter": _Counter(),
        "context": _Context(),
        "port": _Port(),
    }


def run_vector(vector: dict[str, Any]) -> tuple[Compiled, Any]:
    root = vector.get("environment", "test/root")
    sources: dict[str, str] = vector.get("imports") or {}
    aliases: dict[str, str] = vector.get("aliases") or {}
    secrets: dict[str, str] = {str(k): str(v) for k, v in (vector.get("secrets") or {}).items()}

    def load(name: str) -> tuple[str, Compiled]:
        canonical = aliases.get(name, name)
        if canonical not in sources:
            raise LoadError(f'environment "{name}" was not found')
        compiled = compile_definition(sources[canonical], canonical)
        return canonical, Compiled.from_json(compiled.to_json())

    def decrypt(_env: str, token: str) -> str:
        if token not in secrets:
            raise ValueError("unknown token")
        return secrets[token]

    limits = Limits(**(vector.get("limits") or {}))
    compiled = Compiled.from_json(compile_definition(vector["definition"], root, limits=limits).to_json())
    ev = evaluate(
        root,
        compiled,
        load=load,
        decrypt=None if vector.get("masked") else decrypt,
        providers=providers(),
        context=vector.get("context", DEFAULT_CONTEXT),
        limits=limits,
    )
    return compiled, ev


def matches(actual: Any, expected: Any) -> bool:
    """Equality, where "<string of N>" and "<list of N>" match any string or list of length N."""
    if isinstance(expected, str) and expected.startswith(("<string of ", "<list of ")) and expected.endswith(">"):
        size = int(expected.rsplit(" ", 1)[1][:-1])
        kind = str if expected.startswith("<string") else list
        return isinstance(actual, kind) and len(actual) == size
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == expected.keys()
            and all(matches(actual[k], v) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(matches(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return bool(actual == expected and type(actual) is type(expected)) or (
        isinstance(actual, int | float) and not isinstance(actual, bool) and actual == expected
    )


def match_diagnostics(name: str, actual: list[LangDiagnostic], wanted: list[dict[str, Any]]) -> None:
    left = list(actual)
    for want in wanted:
        for d in left:
            if (
                d.path == want["path"]
                and d.severity == want.get("severity", "error")
                and want["message"] in d.message
                and ("environment" not in want or d.environment == want["environment"])
            ):
                left.remove(d)
                assert d.environment, f"{name}: a diagnostic without an environment: {d}"
                break
        else:
            pytest.fail(f"{name}: expected diagnostic {want} not found among {[str(d) for d in actual]}")
    assert not left, f"{name}: unexpected diagnostics: {[str(d) for d in left]}"


def _vector_files() -> list[Path]:
    return sorted(VECTORS.glob("*.yaml"))


@pytest.mark.parametrize("path", _vector_files(), ids=lambda p: p.stem)
def test_vector(path: Path) -> None:
    vector = _load_yaml(path)
    compiled, ev = run_vector(vector)
    name = path.stem
    match_diagnostics(name, [*compiled.diagnostics, *ev.diagnostics], vector.get("diagnostics") or [])
    revealed = ev.to_plain(reveal=True)
    assert matches(revealed, vector["expected"]), f"{name}: revealed values {revealed}"
    if "expected_redacted" in vector:
        redacted = ev.to_plain(reveal=False)
        assert matches(redacted, vector["expected_redacted"]), f"{name}: redacted values {redacted}"
    projections = vector.get("projections") or {}
    projection_diags: list[LangDiagnostic] = []
    for section, project in (("environmentVariables", project_environment_variables), ("files", project_files)):
        result = project(ev)
        projection_diags += result.diagnostics
        if section in projections:
            got = {k: [p.text, p.secret] for k, p in result.items()}
            assert got == projections[section], f"{name}: {section}"
    config = project_pulumi_config(ev)
    projection_diags += config.diagnostics
    if "pulumiConfig" in projections:
        assert {k: p.secret for k, p in config.items()} == projections["pulumiConfig"], f"{name}: pulumiConfig"
    match_diagnostics(name, projection_diags, projections.get("projection_diagnostics") or [])


def test_vectors_exist() -> None:
    assert len(_vector_files()) >= 30

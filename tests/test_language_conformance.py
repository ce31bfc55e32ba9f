"""Pulumi ESC's own evaluator cases, run through Strongroom's language.

The cases live outside the repository (``<checkout>/../shared/esc-conformance``, see its
README); they are read in place, never copied. Each case is compiled (and round-tripped
through the JSON cache), evaluated with the providers and rotators the README defines,
and compared with ESC's expected values (revealed and redacted) and diagnostics
(environment, path, severity, summary, line and column). The score is printed at the end of the run.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from strongroom.language import (
    Compiled,
    LoadError,
    ProviderOutput,
    compile_definition,
    evaluate,
    parse_path,
)

SUITE = Path(__file__).resolve().parents[2] / "shared" / "esc-conformance"
CASES = SUITE / "cases"

#: Cases deliberately not run, with the reason.
UNSUPPORTED: dict[str, str] = {
    "bench": (
        "benchmark only: it has no expected results and its `bench` provider exists to be slow "
        "(the suite README says to skip it)"
    ),
}

#: ESC summary -> Strongroom summary, where Strongroom words it differently (each with its reason).
SUMMARY_MAP: dict[str, str] = {
    # The YAML parsers differ (go-yaml vs ruamel.yaml); ours names the token it found and gives the
    # position as the diagnostic's line and column rather than inside the text.
    "yaml: line 1: did not find expected ',' or ']'": "malformed YAML: expected ',' or ']', but got '<stream end>'",
    # ESC's message is its Go file loader's error; Strongroom's loader callback says which environment.
    "open testdata/eval/inline-reference/foo/unknown.yaml: no such file or directory": (
        'environment "foo/unknown" was not found'
    ),
    "open testdata/eval/inline-reference-rotateOnly/fake/inaccessible1.yaml: no such file or directory": (
        'environment "fake/inaccessible1" was not found'
    ),
    # ESC shows the envelope decoder's error ("EOF"); ours does not describe ciphertexts, says what to do instead.
    "invalid ciphertext: EOF": (
        "this secret could not be decrypted: the ciphertext is malformed or was made with another key"
    ),
    # ESC's message lacks a space ("...equal to1"); ours has it.
    "expected a number less than or equal to1": "expected a number less than or equal to 1",
}


# --------------------------------------------------------------------------- the harness's seams


def _rot128(data: bytes) -> bytes:
    return bytes((b + 128) % 256 for b in data)


def esc_decrypt(_env: str, token: str) -> str:
    """ESC's ciphertext envelope: base64("escx" + u32 version + ciphertext + crc32), test cipher +128."""
    try:
        raw = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("EOF") from None
    if len(raw) < 12 or raw[:4] != b"escx":
        raise ValueError("EOF")
    (version,) = struct.unpack(">I", raw[4:8])
    body, (crc,) = raw[8:-4], struct.unpack(">I", raw[-4:])
    if version != 1 or zlib.crc32(raw[:-4]) != crc:
        raise ValueError("bad envelope")
    return _rot128(body).decode("utf-8")


class EchoInputs:
    """``test``: returns its inputs unchanged."""

    schema = None

    def open(self, inputs: Any, context: Any) -> Any:
        return inputs


class SecretWrapper:
    """``secret-wrapper``: returns its inputs, marked secret."""

    schema = None

    def open(self, inputs: Any, context: Any) -> Any:
        return ProviderOutput(inputs, secret=True)


class ErrorProvider:
    """``error``: fails with the input ``why``."""

    schema = {"type": "object", "properties": {"why": {"type": "string"}}, "required": ["why"]}

    def open(self, inputs: Any, context: Any) -> Any:
        raise RuntimeError(inputs["why"])


def _t(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": kind, **more}


class SchemaProvider:
    """``schema``: returns its inputs; declares ESC's test input schema (as JSON Schema)."""

    schema = {
        "type": "object",
        "$defs": {"defRecord": _t("object", properties={"baz": _t("string", const="qux")}, required=["baz"])},
        "properties": {
            "null": _t("null"),
            "boolean": _t("boolean"),
            "false": _t("boolean", const=False),
            "true": _t("boolean", const=True),
            "number": _t("number"),
            "pi": _t("number", const=3.14),
            "string": _t("string"),
            "hello": _t("string", const="hello"),
            "array": _t("array", items=True),
            "tuple": _t("array", prefixItems=[_t("string", const="hello"), _t("string", const="world")]),
            "map": _t("object", additionalProperties=True),
            "record": _t("object", properties={"foo": _t("string")}, required=["foo"]),
            "anyOf": {"anyOf": [_t("string"), _t("number")]},
            "oneOf": {"oneOf": [_t("string"), _t("number")]},
            "ref": {"$ref": "#/$defs/defRecord"},
            "const-array": _t("array", const=["hello", 42]),
            "const-object": _t("object", const={"hello": "world"}),
            "enum": _t("string", enum=["foo", "bar"]),
            "never": False,
            "always": True,
            "double": _t("array", prefixItems=[_t("string"), _t("number")]),
            "triple": _t("array", prefixItems=[_t("string"), _t("number"), _t("boolean")]),
            "dependentReq": _t(
                "object",
                properties={"foo": _t("string"), "bar": _t("number")},
                dependentRequired={"foo": ["bar"]},
            ),
            "multiple": _t("number", multipleOf=2),
            "minimum": _t("number", minimum=1),
            "exclusiveMinimum": _t("number", exclusiveMinimum=1),
            "maximum": _t("number", maximum=1),
            "exclusiveMaximum": _t("number", exclusiveMaximum=1),
            "minLength": _t("string", minLength=1),
            "maxLength": _t("string", maxLength=1),
            "pattern": _t("string", pattern="^foo[0-9]+$"),
            "minItems": _t("array", minItems=3),
            "maxItems": _t("array", maxItems=2),
            "minProperties": _t("object", minProperties=1),
            "maxProperties": _t("object", maxProperties=1),
        },
    }

    def open(self, inputs: Any, context: Any) -> Any:
        return inputs


class SwapRotator:
    """``swap``: its state holds ``a`` and ``b``; opening returns the state."""

    inputs_schema = {"type": "object"}
    state_schema = {"type": "object", "properties": {"a": True, "b": True}}

    def open(self, inputs: Any, state: Any, context: Any) -> Any:
        return dict(state or {})

    def rotate(self, inputs: Any, state: Any, context: Any) -> Any:
        state = dict(state or {})
        return {"a": state.get("b"), "b": state.get("a")}


class EchoRotator:
    """``echo``: ``next`` is a rotate-only input; the state holds ``current`` and optional ``previous``."""

    inputs_schema = {"type": "object", "properties": {"next": {"type": "string", "rotateOnly": True}}}
    state_schema = {
        "type": "object",
        "properties": {"current": {"type": "string"}, "previous": {"type": ["string", "null"]}},
        "required": ["current"],
    }

    def open(self, inputs: Any, state: Any, context: Any) -> Any:
        return dict(state or {})

    def rotate(self, inputs: Any, state: Any, context: Any) -> Any:
        return {"current": inputs["next"], "previous": (state or {}).get("current")}


PROVIDERS: dict[str, Any] = {
    "test": EchoInputs(),
    "secret-wrapper": SecretWrapper(),
    "error": ErrorProvider(),
    "schema": SchemaProvider(),
}
ROTATORS: dict[str, Any] = {"swap": SwapRotator(), "echo": EchoRotator()}
CONTEXT = {"pulumi": {"user": {"id": "USER_123"}}}


def _compile(path: Path, name: str) -> Compiled:
    compiled = compile_definition(path.read_text(encoding="utf-8"), name)
    return Compiled.from_json(compiled.to_json())  # evaluate what the cache holds


def run_case(case: Path) -> tuple[Compiled, Any]:
    overrides = json.loads((case / "overrides.json").read_text()) if (case / "overrides.json").exists() else {}
    root = overrides.get("rootEnvironment", case.name)

    def load(name: str) -> tuple[str, Compiled]:
        path = case / f"{name}.yaml"
        if not path.is_file():
            raise LoadError(f'environment "{name}" was not found')
        return name, _compile(path, name)

    compiled = _compile(case / "env.yaml", root)
    ev = evaluate(
        root,
        compiled,
        load=load,
        decrypt=esc_decrypt,
        providers=PROVIDERS,
        rotators=ROTATORS,
        context=CONTEXT,
    )
    return compiled, ev


def _path(text: str) -> tuple[str | int, ...]:
    return parse_path(text) if text else ()


def expected_diagnostics(case: Path, expected: dict[str, Any]) -> collections.Counter[tuple[Any, ...]]:
    out: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for key in ("loadDiags", "evalDiags"):
        for d in expected.get(key) or []:
            subject = d.get("Subject") or {}
            start = subject.get("Start") or {}
            severity = "error" if d["Severity"] == 1 else "warning"
            summary = SUMMARY_MAP.get(d["Summary"], d["Summary"])
            where = (start.get("Line"), start.get("Column"))
            out[(subject.get("Filename"), _path(d["Path"]), severity, summary, where)] += 1
    return out


def actual_diagnostics(
    compiled: Compiled, ev: Any, expected: collections.Counter[tuple[Any, ...]]
) -> collections.Counter[tuple[Any, ...]]:
    # ESC reports YAML syntax errors without a subject (no file name or position); compare those without.
    subjectless = {k[1:4] for k in expected if k[0] is None}
    out: collections.Counter[tuple[Any, ...]] = collections.Counter()
    for d in (*compiled.diagnostics, *ev.diagnostics):
        key = (d.environment, _path(d.path), d.severity, d.summary, (d.line, d.column))
        if key[1:4] in subjectless:
            key = (None, *key[1:4], (None, None))
        out[key] += 1
    return out


def check_case(case: Path) -> list[str]:
    """The ways Strongroom's result differs from ESC's (empty when the case passes)."""
    expected = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    compiled, ev = run_case(case)
    problems: list[str] = []
    revealed = expected.get("evalJSONRevealed")
    redacted = expected.get("evalJsonRedacted")
    # ESC returns no environment at all for an empty definition (or one that fails to parse);
    # Strongroom returns an empty object.
    if revealed is None:
        revealed = {}
    if redacted is None:
        redacted = {}
    if ev.to_plain(reveal=True) != revealed:
        problems.append(f"revealed values differ:\n  ours: {ev.to_plain(reveal=True)}\n  ESC:  {revealed}")
    if ev.to_plain(reveal=False) != redacted:
        problems.append(f"redacted values differ:\n  ours: {ev.to_plain(reveal=False)}\n  ESC:  {redacted}")
    want = expected_diagnostics(case, expected)
    got = actual_diagnostics(compiled, ev, want)
    if want != got:
        missing = want - got
        extra = got - want
        problems.append(
            f"diagnostics differ:\n  missing (ESC only): {sorted(missing, key=str)}"
            f"\n  extra (ours only): {sorted(extra, key=str)}"
        )
    return problems


def _case_dirs() -> list[Path]:
    if not CASES.is_dir():
        return []
    return sorted(p for p in CASES.iterdir() if p.is_dir())


_CASES = _case_dirs()
_SKIP_REASON = f"the ESC conformance suite is not at {SUITE} (it lives beside the checkout in CI)"


@pytest.mark.parametrize("case", _CASES or [None], ids=[p.name for p in _CASES] or ["suite-absent"])
def test_conformance_case(case: Path | None) -> None:
    if case is None:
        pytest.skip(_SKIP_REASON)
    if case.name in UNSUPPORTED:
        pytest.skip(f"unsupported: {UNSUPPORTED[case.name]}")
    problems = check_case(case)
    assert not problems, "\n".join(problems)


def test_conformance_score(request: pytest.FixtureRequest, record_property: Any) -> None:
    """Runs every case once more to compute and print the score; fails below the full score."""
    if not _CASES:
        pytest.skip(_SKIP_REASON)
    total = len(_CASES)
    failed = []
    for case in _CASES:
        if case.name in UNSUPPORTED:
            continue
        try:
            if check_case(case):
                failed.append(case.name)
        except Exception as exc:  # a crash is a failed case, reported below
            failed.append(f"{case.name} ({type(exc).__name__})")
    passed = total - len(UNSUPPORTED) - len(failed)
    line = (
        f"ESC conformance: {passed}/{total} passed; unsupported: "
        + (", ".join(f"{k} ({v})" for k, v in UNSUPPORTED.items()) or "none")
        + (f"; failing: {', '.join(failed)}" if failed else "")
    )
    record_property("esc_conformance_score", f"{passed}/{total}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown even when output is captured
            reporter.write_line("")
            reporter.write_line(line)
    print(line)
    assert not failed, line

"""The language's API: the compiled cache, provenance, masked mode, secrecy, limits and seams."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from strongroom.errors import DecryptionError, Diagnostic
from strongroom.language import (
    Compiled,
    Evaluation,
    EvalValue,
    LangDiagnostic,
    Limits,
    LoadError,
    compile_definition,
    evaluate,
    project_environment_variables,
)
from strongroom.language.compiler import CACHE_VERSION
from strongroom.model import Secret


def _no_load(name: str) -> tuple[str, Compiled]:
    raise LoadError(f'environment "{name}" was not found')


def run(
    text: str,
    *,
    env: str = "proj/root",
    imports: dict[str, str] | None = None,
    decrypt: Any = "default",
    providers: dict[str, Any] | None = None,
    limits: Limits | None = None,
) -> tuple[Compiled, Evaluation]:
    sources = imports or {}
    limits = limits or Limits()

    def load(name: str) -> tuple[str, Compiled]:
        if name not in sources:
            raise LoadError(f'environment "{name}" was not found')
        return name, compile_definition(sources[name], name, limits=limits)

    compiled = compile_definition(text, env, limits=limits)
    ev = evaluate(
        env,
        compiled,
        load=load,
        decrypt=(lambda _e, t: f"plain({t})") if decrypt == "default" else decrypt,
        providers=providers or {},
        context={"pulumi": {"user": {"id": "u1"}}},
        limits=limits,
    )
    return compiled, ev


# --------------------------------------------------------------------------- the compiled cache


def test_cache_round_trip_keeps_values_positions_and_diagnostics() -> None:
    text = "values:\n  a: 1\n  b: ${a}\n  c: ${nope}\n  d: {fn::join: x}\n"
    compiled = compile_definition(text, "proj/e")
    data = compiled.to_json()
    assert json.loads(data)["v"] == CACHE_VERSION
    again = Compiled.from_json(data)
    assert again.diagnostics == compiled.diagnostics
    assert again.to_json() == data
    one = evaluate("proj/e", compiled, load=_no_load, decrypt=None, providers={}, context={})
    two = evaluate("proj/e", again, load=_no_load, decrypt=None, providers={}, context={})
    assert one.to_plain(reveal=True) == two.to_plain(reveal=True)
    assert one.diagnostics == two.diagnostics
    b = two.get("b")
    assert b is not None and (b.line, b.column) == (3, 6)


def test_cache_of_another_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        Compiled.from_json('{"v": 999}')
    with pytest.raises(ValueError):
        Compiled.from_json('{"v": 1, "values": [99, 1, 1]}')


def test_reading_the_cache_and_evaluating_needs_neither_ruamel_nor_jsonschema() -> None:
    data = compile_definition("values:\n  a: ${b}\n  b: {fn::toJSON: [1]}\n", "p/e").to_json()
    script = (
        "import sys, json\n"
        "from strongroom.language import Compiled, evaluate\n"
        f"c = Compiled.from_json({data!r})\n"
        "ev = evaluate('p/e', c, load=None, decrypt=None, providers={}, context={})\n"
        "assert ev.to_plain(True) == {'a': '[1]', 'b': '[1]'}, ev.to_plain(True)\n"
        "bad = [m for m in sys.modules if m.startswith(('ruamel', 'jsonschema'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_compile_reports_everything_at_once_with_positions() -> None:
    compiled = compile_definition("values:\n  a: ${x\n  b: {fn::nope: 1}\n  c: {fn::join: 3}\n", "p/e")
    assert compiled.has_errors
    paths = [d.path for d in compiled.diagnostics]
    assert paths == ["values.a", "values.b", 'values.c["fn::join"]']
    for d in compiled.diagnostics:
        assert d.environment == "p/e" and d.line is not None and d.column is not None and d.hint


def test_to_diagnostic_converts_for_the_rest_of_strongroom() -> None:
    d = LangDiagnostic(
        'unknown property "pasword"; did you mean "password"?', "error", "p/e", 3, 5, "values.a", "fix it"
    )
    converted = d.to_diagnostic()
    assert isinstance(converted, Diagnostic)
    assert converted.message == 'unknown property "pasword"; did you mean "password"?; fix it'
    assert (converted.environment, converted.line, converted.column, converted.path) == ("p/e", 3, 5, "values.a")
    assert str(d) == str(converted)


# --------------------------------------------------------------------------- provenance


def test_each_value_knows_where_it_was_defined() -> None:
    _, ev = run(
        "imports: [proj/base]\nvalues:\n  own: 1\n  ref: ${fromBase}\n",
        imports={"proj/base": "values:\n  fromBase: 2\n  nested:\n    deep: 3\n"},
    )
    own, ref, base, deep = ev.get("own"), ev.get("ref"), ev.get("fromBase"), ev.get("nested.deep")
    assert own is not None and own.where == "proj/root:3:8"
    assert ref is not None and ref.where == "proj/root:4:8"
    assert base is not None and base.where == "proj/base:2:13" and base.env == "proj/base"
    assert deep is not None and deep.where == "proj/base:4:11"


# --------------------------------------------------------------------------- secrets


def test_masked_mode_never_calls_decrypt_and_shows_secret() -> None:
    def decrypt(_env: str, _token: str) -> str:
        raise AssertionError("masked mode must not decrypt")

    _, ev = run(
        "values:\n  pw: {fn::secret: {ciphertext: T}}\n  dsn: x-${pw}\n",
        decrypt=None,
    )
    assert ev.masked
    assert ev.to_plain(reveal=False) == {"pw": "[secret]", "dsn": "[secret]"}
    assert ev.to_plain(reveal=True) == {"pw": "[secret]", "dsn": "[secret]"}
    assert not ev.diagnostics
    python = ev.to_python()
    assert isinstance(python["pw"], Secret) and not python["pw"].revealed
    del decrypt


def test_to_python_wraps_secrets() -> None:
    _, ev = run("values:\n  pw: {fn::secret: hunter2}\n  n: 1\n  obj: {fn::fromJSON: {fn::secret: '{\"a\": 1}'}}\n")
    python = ev.to_python()
    assert python["n"] == 1
    assert python["pw"].reveal() == "hunter2"
    assert python["obj"]["a"].reveal() == "1"
    assert repr(python["pw"]) == "[secret]"


def test_a_secret_is_never_in_a_repr_or_a_message() -> None:
    _, ev = run(
        "values:\n"
        "  pw: {fn::secret: hunter2}\n"
        "  bad: {fn::fromJSON: '${pw}'}\n"
        "  failing: {fn::open::error: {why: '${pw}'}}\n"
        "  wrong: ${pw.key}\n",
        providers={"error": _Failing()},
    )
    value = ev.get("pw")
    assert value is not None and "hunter2" not in repr(value)
    assert "hunter2" not in repr(ev.value)
    assert ev.diagnostics
    for d in ev.diagnostics:
        assert "hunter2" not in d.message, d


def test_a_secret_objects_keys_and_length_are_not_suggested() -> None:
    _, ev = run(
        "values:\n  s: {fn::fromJSON: {fn::secret: '{\"password\": [1]}'}}\n  t: ${s.pasword}\n  u: ${s.password[3]}\n"
    )
    messages = [d.message for d in ev.diagnostics]
    assert len(messages) == 2
    assert "did you mean" not in messages[0] and "password" not in messages[0]
    assert "length" not in messages[1]


def test_validate_withholds_details_when_the_schema_holds_secrets() -> None:
    _, ev = run("values:\n  pw: {fn::secret: hunter2}\n  v: {fn::validate: {schema: {const: '${pw}'}, value: guess}}\n")
    (d,) = ev.diagnostics
    assert "hunter2" not in d.message and "details withheld" in d.summary


class _Failing:
    schema = None

    def open(self, inputs: Any, context: Any) -> Any:
        raise RuntimeError(f"failed with {inputs['why']}")


def test_decrypt_failures_are_diagnostics_that_do_not_show_the_token() -> None:
    def decrypt(_env: str, token: str) -> str:
        raise DecryptionError()

    _, ev = run("values:\n  pw: {fn::secret: {ciphertext: TOKEN-XYZ}}\n", decrypt=decrypt)
    (d,) = ev.diagnostics
    assert "could not be decrypted" in d.summary and "TOKEN-XYZ" not in d.message
    assert ev.to_plain(reveal=False) == {"pw": "[secret]"}


def test_decrypt_is_given_the_environment_that_holds_the_secret() -> None:
    seen: list[tuple[str, str]] = []

    def decrypt(env: str, token: str) -> str:
        seen.append((env, token))
        return "p"

    run(
        "imports: [proj/base]\nvalues:\n  a: {fn::secret: {ciphertext: A}}\n",
        imports={"proj/base": "values:\n  b: {fn::secret: {ciphertext: B}}\n"},
        decrypt=decrypt,
    )
    assert sorted(seen) == [("proj/base", "B"), ("proj/root", "A")]


# --------------------------------------------------------------------------- seams


def test_load_errors_and_failing_loaders_are_diagnostics() -> None:
    def load(name: str) -> tuple[str, Compiled]:
        if name == "p/denied":
            raise LoadError("you may not read p/denied")
        raise OSError("disk on fire")

    compiled = compile_definition("imports: [p/denied, p/broken]\nvalues: {a: 1}\n", "p/e")
    ev = evaluate("p/e", compiled, load=load, decrypt=None, providers={}, context={})
    assert [(d.path, d.summary) for d in ev.diagnostics] == [
        ("imports[0]", "you may not read p/denied"),
        ("imports[1]", 'environment "p/broken" could not be loaded (OSError)'),
    ]
    assert ev.to_plain(reveal=True) == {"a": 1}


def test_provider_protocol_and_context() -> None:
    class Echo:
        schema = {"type": "object", "required": ["x"]}

        def __init__(self) -> None:
            self.calls: list[tuple[Any, Any]] = []

        def open(self, inputs: Any, context: Any) -> Any:
            self.calls.append((inputs, context))
            return {"got": inputs["x"], "secret": Secret("s3")}

    echo = Echo()
    _, ev = run("values:\n  o: {fn::open::echo: {x: 1}}\n  bad: {fn::open::echo: {}}\n", providers={"echo": echo})
    assert ev.to_plain(reveal=False) == {"o": {"got": 1, "secret": "[secret]"}, "bad": "[unknown]"}
    assert ev.to_plain(reveal=True)["o"]["secret"] == "s3"
    assert echo.calls == [
        (
            {"x": 1},
            {
                "pulumi": {"user": {"id": "u1"}},
                "rootEnvironment": {"name": "proj/root"},
                "currentEnvironment": {"name": "proj/root"},
            },
        ),
    ]
    (d,) = ev.diagnostics
    assert d.summary == "missing required properties: x"


def test_a_provider_returning_garbage_is_a_diagnostic() -> None:
    class Garbage:
        schema = None

        def open(self, inputs: Any, context: Any) -> Any:
            return {"x": object()}

    _, ev = run("values:\n  o: {fn::open::g: {}}\n", providers={"g": Garbage()})
    (d,) = ev.diagnostics
    assert 'provider "g" returned an unusable value' in d.summary


def test_projection_of_environment_variables() -> None:
    _, ev = run("values:\n  environmentVariables:\n    A: 1\n    B: {fn::secret: x}\n")
    projection = project_environment_variables(ev)
    assert dict(projection) == {
        "A": ("1", False, ev.get("environmentVariables.A")),
        "B": ("x", True, ev.get("environmentVariables.B")),
    }
    assert not projection.diagnostics


# --------------------------------------------------------------------------- limits


def test_a_reference_chain_of_10000_fails_cleanly() -> None:
    lines = ["values:"] + [f"  a{i}: ${{a{i + 1}}}" for i in range(10_000)] + ["  a10000: end"]
    _, ev = run("\n".join(lines) + "\n")
    assert any("references are nested more than" in d.summary for d in ev.diagnostics)


def test_a_long_chain_within_the_limit_evaluates() -> None:
    lines = ["values:"] + [f"  a{i}: ${{a{i + 1}}}" for i in range(500)] + ["  a500: end"]
    _, ev = run("\n".join(lines) + "\n")
    assert not ev.diagnostics
    assert ev.to_plain(reveal=True)["a0"] == "end"


@pytest.mark.parametrize("opening, closing", [("[", "]"), ("{a: ", "}")])
def test_10000_levels_of_nesting_fail_cleanly(opening: str, closing: str) -> None:
    text = "values:\n  deep: " + opening * 10_000 + "1" + closing * 10_000 + "\n"
    compiled, ev = run(text)
    assert any("nested more than" in d.summary for d in compiled.diagnostics)
    assert ev.to_plain(reveal=True) == {}


def test_deep_block_nesting_fails_cleanly() -> None:
    text = "values:\n  deep:\n" + "".join("  " * (i + 2) + "- \n" for i in range(300))
    compiled, _ = run(text)
    assert any("nested more than 64 levels" in d.summary for d in compiled.diagnostics)


@pytest.mark.slow
def test_a_huge_array_evaluates() -> None:
    text = "values:\n  big: [" + ",".join(["1"] * 100_000) + "]\n  n: ${big[99999]}\n"
    compiled, ev = run(text)
    assert not compiled.diagnostics and not ev.diagnostics
    assert ev.to_plain(reveal=True)["n"] == 1


def test_an_alias_bomb_is_refused() -> None:
    lines = ["values:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    compiled, _ = run("\n".join(lines) + "\n")
    assert any("expands to more than" in d.summary for d in compiled.diagnostics)


def test_object_doubling_through_references_is_refused() -> None:
    lines = ["values:", "  v0: [1, 2, 3, 4]", "  keep: me"]
    lines += [f"  v{i}: ['${{v{i - 1}}}', '${{v{i - 1}}}']" for i in range(1, 30)]
    _, ev = run("\n".join(lines) + "\n")
    assert any("made of more than" in d.summary for d in ev.diagnostics)
    rendered = ev.to_plain(reveal=True)
    assert rendered["keep"] == "me" and rendered["v1"] == [[1, 2, 3, 4], [1, 2, 3, 4]]
    assert rendered["v29"] == "[unknown]"


def test_total_text_budget() -> None:
    limits = Limits(max_total_string_length=10_000, max_string_length=5_000)
    lines = ["values:", "  s: " + "x" * 3000] + [f"  c{i}: ${{s}}-{i}" for i in range(10)]
    _, ev = run("\n".join(lines) + "\n", limits=limits)
    assert any("too much text" in d.summary for d in ev.diagnostics)


def test_import_depth_limit() -> None:
    imports = {f"p/e{i}": f"imports: [p/e{i + 1}]\nvalues: {{v{i}: {i}}}\n" for i in range(10)}
    imports["p/e10"] = "values: {end: true}\n"
    _, ev = run("imports: [p/e0]\nvalues: {}\n", imports=imports, limits=Limits(max_import_depth=5))
    assert any("imports are nested more than 5" in d.summary for d in ev.diagnostics)


def test_steps_limit() -> None:
    lines = ["values:"] + [f"  a{i}: ${{b}}" for i in range(100)] + ["  b: 1"]
    _, ev = run("\n".join(lines) + "\n", limits=Limits(max_steps=50))
    assert [d.summary for d in ev.diagnostics] == ["evaluation stopped after 50 steps"]


def test_the_definition_size_limit() -> None:
    compiled = compile_definition("values:\n  a: " + "x" * (1024 * 1024) + "\n", "p/e")
    assert [d.summary for d in compiled.diagnostics] == ["the definition is larger than the 1024 KiB limit"]


def test_eval_value_repr_hides_secrets() -> None:
    v = EvalValue("hunter2", True, False, "p/e", None)
    assert "hunter2" not in repr(v)
    assert "[secret]" in repr(v)

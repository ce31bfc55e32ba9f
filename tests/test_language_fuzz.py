"""Whatever the input, compiling and evaluating only ever produce diagnostics.

Hypothesis feeds arbitrary text and arbitrary YAML-shaped data full of ``${...}``
references and ``fn::`` calls (including cycles between generated environments).
No example may raise, and the result must render to JSON. Run time is bounded
structurally by ``Limits`` (depth, nodes, string lengths, reference chains, steps),
never by a wall clock.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.language import (
    BUILTINS,
    Compiled,
    LoadError,
    ProviderOutput,
    compile_definition,
    evaluate,
    project_environment_variables,
    project_files,
    project_pulumi_config,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: For the structural cases, whose inputs are large (up to thousands of lines) and whose space is small.
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMES = ["a", "b", "c", "list", "environmentVariables", "files", "pulumiConfig"]
ENVS = ["p/a", "p/b", "bare"]


class _Test:
    schema = None

    def open(self, inputs: Any, context: Any) -> Any:
        return inputs


class _Wrap:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}

    def open(self, inputs: Any, context: Any) -> Any:
        return ProviderOutput(inputs, secret=True)


class _Boom:
    schema = None

    def open(self, inputs: Any, context: Any) -> Any:
        raise RuntimeError("boom")


PROVIDERS = {"test": _Test(), "wrap": _Wrap(), "boom": _Boom()}

references = st.sampled_from(
    [
        "${a}",
        "${a.b}",
        "${b[0]}",
        "${list[1]}",
        "${c.list[0].a}",
        '${a["b.c"]}',
        "x${a}y",
        "${a}${a}",
        "$$",
        "$${a}",
        "${",
        "${a",
        "${}",
        "${[0]}",
        "${a[x]}",
        "${.a}",
        "${imports}",
        '${imports["p/a"].a}',
        "${context.pulumi.user.id}",
        "${context.rootEnvironment.name}",
        "${environments.p.a.a}",
        "${environments.p.b}",
        "${environments.nope.nope.x}",
        '{"a": 1e999}',
        '{"a": [1, {"b": null}]}',
        "9" * 5000,
        "1e999",
        "[" * 200 + "]" * 200,
        "0x1F",
    ]
)
strings = st.one_of(st.text(max_size=12), references)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), strings)
keys = st.one_of(
    st.sampled_from(
        [
            *NAMES,
            *BUILTINS,
            "fn::open::test",
            "fn::open::wrap",
            "fn::open::boom",
            "fn::rotate::x",
            "fn::other",
            "ciphertext",
            "provider",
            "inputs",
            "schema",
            "value",
            "state",
        ]
    ),
    st.text(max_size=8),
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(keys, children, max_size=5),
        st.builds(lambda k, v: {k: v}, st.sampled_from([*BUILTINS, "fn::open::test", "fn::open::wrap"]), children),
        st.builds(lambda t: {"fn::secret": {"ciphertext": t}}, st.sampled_from(["T1", "T2", "bad"])),
        st.builds(lambda s: {"fn::fromJSON": s}, strings),
    )


data = st.recursive(scalars, _extend, max_leaves=40)
imports = st.lists(
    st.one_of(
        st.sampled_from(ENVS), st.builds(lambda n, m: {n: {"merge": m}}, st.sampled_from(ENVS), st.booleans()), data
    ),
    max_size=3,
)
definitions = st.builds(
    lambda imp, values, extra: {"imports": imp, "values": values, **extra},
    imports,
    st.one_of(st.dictionaries(st.sampled_from(NAMES), data, max_size=6), data),
    st.dictionaries(st.sampled_from(["description", "valuse"]), data, max_size=1),
)


def _decrypt(_env: str, token: str) -> str:
    if token == "bad":
        raise ValueError("bad token")
    return f"plain-{token}"


def check(text: str, others: dict[str, str], masked: bool) -> None:
    def load(name: str) -> tuple[str, Compiled]:
        if name not in others:
            raise LoadError(f"{name} not found")
        return name, Compiled.from_json(compile_definition(others[name], name).to_json())

    compiled = compile_definition(text, "p/root")
    cached = Compiled.from_json(compiled.to_json())
    assert cached.diagnostics == compiled.diagnostics
    ev = evaluate(
        "p/root",
        cached,
        load=load,
        decrypt=None if masked else _decrypt,
        providers=PROVIDERS,
        context={"pulumi": {"user": {"id": "U"}}},
    )
    for reveal in (True, False):
        json.dumps(ev.to_plain(reveal=reveal))
    ev.to_python()
    for project in (project_environment_variables, project_files, project_pulumi_config):
        project(ev)
    for d in (*compiled.diagnostics, *ev.diagnostics):
        assert d.severity in ("error", "warning") and d.environment and d.summary
        d.to_diagnostic()
    if not masked:
        for d in ev.diagnostics:
            assert "plain-T" not in d.message


@SETTINGS
@given(st.text(max_size=400), st.booleans())
def test_arbitrary_text(text: str, masked: bool) -> None:
    check(text, {}, masked)


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list("[]{}:,-'\"#&*!|>$ \n\tab01")), max_size=300), st.booleans())
def test_yaml_punctuation(text: str, masked: bool) -> None:
    check(text, {}, masked)


@SETTINGS
@given(definitions, st.dictionaries(st.sampled_from(ENVS), definitions, max_size=3), st.booleans())
def test_yaml_shaped_data(root: dict[str, Any], others: dict[str, dict[str, Any]], masked: bool) -> None:
    check(json.dumps(root), {name: json.dumps(d) for name, d in others.items()}, masked)


@FEW
@given(st.integers(1, 3000), st.sampled_from(["[", "{a: ", "- ", "{fn::toJSON: "]))
def test_deep_nesting(depth: int, opening: str) -> None:
    closing = {"[": "]", "{a: ": "}", "- ": "", "{fn::toJSON: ": "}"}[opening]
    if opening == "- ":
        body = "".join("  " * (i + 2) + "- \n" for i in range(min(depth, 400)))
        check("values:\n  deep:\n" + body, {}, False)
    else:
        check("values:\n  deep: " + opening * depth + "1" + closing * depth + "\n", {}, False)


@FEW
@given(
    st.integers(1, 40),
    st.sampled_from(
        [
            "${s}${s}",
            "{fn::join: ['', ['${s}', '${s}']]}",
            "['${s}', '${s}']",
            "{fn::concat: [['${s}'], ['${s}']]}",
            "{fn::toJSON: ['${s}', '${s}']}",
        ]
    ),
)
def test_doubling(steps: int, shape: str) -> None:
    lines = ["values:", "  s0: xxxxxxxxxxxxxxxx"]
    lines += [f"  s{i}: " + shape.replace("${s}", f"${{s{i - 1}}}") for i in range(1, steps + 1)]
    check("\n".join(lines) + "\n", {}, False)


@FEW
@given(st.integers(1, 3000), st.booleans())
def test_reference_chains(length: int, cyclic: bool) -> None:
    lines = ["values:"] + [f"  a{i}: ${{a{i + 1}}}" for i in range(length)]
    lines.append(f"  a{length}: " + ("${a0}" if cyclic else "end"))
    check("\n".join(lines) + "\n", {}, False)

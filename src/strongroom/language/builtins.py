"""The built-in functions (``fn::...``), evaluated for the evaluator's trampoline.

Each call either returns a value at once or is a generator that yields the argument
nodes it needs. Errors are diagnostics, reported where the argument is written.
"""

from __future__ import annotations

__all__ = ["Builtins"]

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from strongroom.errors import StrongroomError
from strongroom.language.diagnostics import did_you_mean
from strongroom.language.nodes import LIT, Arr, Call, Node, Obj, Secret
from strongroom.language.paths import Path
from strongroom.language.providers import ProviderOutput
from strongroom.language.schema import schema_error, validate
from strongroom.language.state import EnvState, Gen
from strongroom.language.values import (
    EvalValue,
    LimitExceeded,
    container,
    from_plain,
    go_json,
    go_string,
    kind_of,
    plain,
    with_flags,
)

if TYPE_CHECKING:
    from strongroom.language.evaluator import Run


class Builtins:
    """The built-in functions of one evaluation (``run``)."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def secret(self, env: EnvState, node: Secret) -> EvalValue:
        if node.ciphertext is None:
            return EvalValue(node.plaintext, True, False, env.name, node)
        if self.run.decrypt is None:
            return self.run.unknown(env, node, True, True)
        try:
            plaintext: Any = self.run.decrypt(env.name, node.ciphertext)
        except StrongroomError as exc:
            self.run.error(
                env, f"this secret could not be decrypted ({exc.message})", node, "check the master key in use"
            )
            return self.run.unknown(env, node, True, True)
        except Exception:  # the decrypt seam may fail in any way; say nothing of the token
            self.run.error(
                env,
                "this secret could not be decrypted: the ciphertext is malformed or was made with another key",
                node,
                "set the secret again with `strongroom env set ... --secret`",
            )
            return self.run.unknown(env, node, True, True)
        if isinstance(plaintext, bytes):
            plaintext = plaintext.decode("utf-8", "replace")
        if not isinstance(plaintext, str):
            self.run.error(env, "decrypting this secret did not give a string", node, "check the decrypt callback")
            return self.run.unknown(env, node, True, True)
        return EvalValue(plaintext, True, False, env.name, node)

    def expect(self, env: EnvState, v: EvalValue, kind: str, at: Node, path: Path | None = None) -> bool:
        if v.unknown or kind_of(v) == kind:
            return True
        self.run.error(
            env, f"expected {kind}, got {kind_of(v)}", at, f"give this function {kind_article(kind)}", path=path
        )
        return False

    def element(self, arg: Node, i: int) -> tuple[Node, Path]:
        """Where the ``i``th element of an argument is written (for messages)."""
        if isinstance(arg, Arr) and i < len(arg.items):
            return arg.items[i], arg.items[i].path
        return arg, (*arg.path, i)

    def arg(self, env: EnvState, node: Node) -> Gen:
        if node.kind == LIT:
            return self.run.lit(env, node, None)
        return (yield (node, None))

    def call(self, env: EnvState, node: Call) -> Gen:
        fn = node.fn
        if fn == "fn::open":
            return (yield from self.call_open(env, node))
        if fn == "fn::rotate":
            return (yield from self.call_rotate(env, node))
        if fn in ("fn::join", "fn::split"):
            a0, a1 = node.args
            assert a0 is not None and a1 is not None
            first = yield from self.arg(env, a0)
            second = yield from self.arg(env, a1)
            if fn == "fn::join":
                return self.join(env, node, first, second, a0, a1)
            return self.split(env, node, first, second, a0, a1)
        if fn == "fn::validate":
            s_node, v_node = node.args
            assert s_node is not None and v_node is not None
            schema = yield from self.arg(env, s_node)
            value = yield from self.arg(env, v_node)
            return self.validate(env, node, schema, value, v_node, s_node)
        a = node.args[0]
        assert a is not None
        v = yield from self.arg(env, a)
        if fn == "fn::final":
            out = with_flags(v, node=node, env=env.name)
            out.final = True
            return out
        if fn == "fn::toString":
            return self.to_string(env, node, v)
        if fn == "fn::toJSON":
            return self.to_json(env, node, v)
        if fn == "fn::fromJSON":
            return self.from_json(env, node, v, a)
        if fn == "fn::toBase64":
            return self.to_base64(env, node, v, a)
        if fn == "fn::fromBase64":
            return self.from_base64(env, node, v, a)
        assert fn == "fn::concat"
        return self.concat(env, node, v, a)

    def to_string(self, env: EnvState, node: Node, v: EvalValue) -> EvalValue:
        try:
            s, unknown, secret = go_string(v, self.run.budget)
        except LimitExceeded as exc:
            self.run.limit_error(env, node, exc)
            return self.run.unknown(env, node, v.has_secret, True)
        if unknown:
            return self.run.unknown(env, node, secret, True)
        if not isinstance(v.value, str) and not self.run.spend(env, node, len(s)):
            return self.run.unknown(env, node, secret, True)
        return EvalValue(s, secret, False, env.name, node)

    def to_json(self, env: EnvState, node: Node, v: EvalValue) -> EvalValue:
        if v.has_unknown:
            return self.run.unknown(env, node, v.has_secret, True)
        try:
            text = go_json(v, self.run.limits.max_string_length)
        except LimitExceeded as exc:
            self.run.limit_error(env, node, exc)
            return self.run.unknown(env, node, v.has_secret, True)
        if not self.run.spend(env, node, len(text)):
            return self.run.unknown(env, node, v.has_secret, True)
        return EvalValue(text, v.has_secret, False, env.name, node)

    def from_json(self, env: EnvState, node: Node, v: EvalValue, a: Node) -> EvalValue:
        if not self.expect(env, v, "string", a):
            return self.run.unknown(env, node)
        if v.unknown:
            return self.run.unknown(env, node, v.secret)
        secret = v.has_secret

        def no_constants(name: str) -> Any:
            raise ValueError(f"{name} is not valid JSON")

        try:
            data = json.loads(v.value, parse_constant=no_constants)
        except json.JSONDecodeError as exc:
            self.run.error(env, f"decoding JSON string: {exc.msg} at character {exc.pos}", node, "fix the JSON text")
            return self.run.unknown(env, node, secret)
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, RecursionError):
                reason = "nested too deeply"
            elif "digits" in str(exc):
                reason = "a number has too many digits"
            else:
                reason = str(exc)
            self.run.error(env, f"decoding JSON string: {reason}", node, "fix the JSON text")
            return self.run.unknown(env, node, secret)
        try:
            return from_plain(
                data,
                secret,
                env.name,
                node,
                max_depth=self.run.limits.max_value_depth,
                max_nodes=self.run.limits.max_value_nodes,
            )
        except LimitExceeded as exc:
            self.run.limit_error(env, node, exc)
            return self.run.unknown(env, node, secret)
        except TypeError as exc:
            self.run.error(env, f"decoding JSON string: {exc}", node, "fix the JSON text")
            return self.run.unknown(env, node, secret)

    def to_base64(self, env: EnvState, node: Node, v: EvalValue, a: Node) -> EvalValue:
        if not self.expect(env, v, "string", a):
            return self.run.unknown(env, node)
        if v.unknown:
            return self.run.unknown(env, node, v.secret, True)
        text = base64.b64encode(v.value.encode("utf-8", "surrogatepass")).decode("ascii")
        if not self.run.spend(env, node, len(text)):
            return self.run.unknown(env, node, v.secret, True)
        return EvalValue(text, v.secret, False, env.name, node)

    def from_base64(self, env: EnvState, node: Node, v: EvalValue, a: Node) -> EvalValue:
        if not self.expect(env, v, "string", a):
            return self.run.unknown(env, node)
        if v.unknown:
            return self.run.unknown(env, node, v.secret, True)
        try:
            raw = base64.b64decode(v.value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            self.run.error(
                env, "decoding base64 string: illegal base64 data", node, "give fn::fromBase64 standard, padded base64"
            )
            return self.run.unknown(env, node, v.secret, True)
        return EvalValue(raw.decode("utf-8", "replace"), v.secret, False, env.name, node)

    def join(self, env: EnvState, node: Node, delim: EvalValue, values: EvalValue, a0: Node, a1: Node) -> EvalValue:
        ok = self.expect(env, delim, "string", a0)
        if not values.unknown:
            if not self.expect(env, values, "array", a1):
                ok = False
            else:
                for i, item in enumerate(values.value):
                    at, path = self.element(a1, i)
                    if not self.expect(env, item, "string", at, path):
                        ok = False
        if not ok:
            return self.run.unknown(env, node)
        secret = delim.has_secret or values.has_secret
        if delim.has_unknown or values.has_unknown:
            return self.run.unknown(env, node, secret, True)
        strings = [item.value for item in values.value]
        if not self.run.spend(env, node, sum(map(len, strings)) + len(delim.value) * max(0, len(strings) - 1)):
            return self.run.unknown(env, node, secret, True)
        return EvalValue(delim.value.join(strings), secret, False, env.name, node)

    def split(self, env: EnvState, node: Node, delim: EvalValue, string: EvalValue, a0: Node, a1: Node) -> EvalValue:
        ok = self.expect(env, delim, "string", a0)
        ok = self.expect(env, string, "string", a1) and ok
        if not ok:
            return self.run.unknown(env, node)
        secret = delim.secret or string.secret
        if delim.unknown or string.unknown:
            return self.run.unknown(env, node, secret)
        parts = string.value.split(delim.value) if delim.value else list(string.value)
        if len(parts) >= self.run.limits.max_value_nodes:
            self.run.error(
                env,
                f"this value would be made of more than {self.run.limits.max_value_nodes} elements",
                node,
                "split less",
            )
            return self.run.unknown(env, node, secret)
        return container([EvalValue(p, secret, False, env.name, node) for p in parts], secret, env.name, node)

    def concat(self, env: EnvState, node: Node, v: EvalValue, a: Node) -> EvalValue:
        if v.unknown:
            return self.run.unknown(env, node, v.secret)
        if not self.expect(env, v, "array", a):
            return self.run.unknown(env, node)
        ok = True
        for i, item in enumerate(v.value):
            at, path = self.element(a, i)
            if not self.expect(env, item, "array", at, path):
                ok = False
        if not ok:
            return self.run.unknown(env, node)
        if any(item.unknown for item in v.value):
            return self.run.unknown(env, node, v.has_secret)
        items = [child for item in v.value for child in item.value]
        secret = v.secret or any(item.secret for item in v.value)
        return container(items, secret, env.name, node)

    def schema_errors(self, env: EnvState, problems: list[tuple[tuple[str | int, ...], str]], at: Node) -> None:
        for rel, message in problems:
            target, rest = _locate(at, rel)
            self.run.error(env, message, target, "change the value to match the schema", path=(*target.path, *rest))

    def validate(
        self, env: EnvState, node: Node, schema: EvalValue, value: EvalValue, v_node: Node, s_node: Node
    ) -> EvalValue:
        if schema.has_unknown:
            return self.run.unknown(env, node, value.has_secret)
        schema_data = plain(schema)
        problem = schema_error(schema_data)
        if problem is not None:
            self.run.error(env, problem, s_node, "write a JSON Schema (draft 2020-12)")
            return self.run.unknown(env, node, value.has_secret)
        if value.has_unknown:
            return value
        problems = validate(plain(value), schema_data)
        if problems:
            if schema.has_secret:
                problems = [
                    (rel, "the value does not match the schema (details withheld: the schema holds secrets)")
                    for rel, _ in problems[:1]
                ]
            self.schema_errors(env, problems, v_node)
            return self.run.unknown(env, node, value.has_secret)
        return value

    def provider_result(self, env: EnvState, node: Node, name: str, out: Any) -> EvalValue:
        secret = False
        if isinstance(out, ProviderOutput):
            out, secret = out.value, out.secret
        try:
            return from_plain(
                out,
                secret,
                env.name,
                node,
                max_depth=self.run.limits.max_value_depth,
                max_nodes=self.run.limits.max_value_nodes,
            )
        except (TypeError, LimitExceeded) as exc:
            self.run.error(env, f'provider "{name}" returned an unusable value: {exc}', node, "fix the provider")
            return self.run.unknown(env, node, secret)

    def call_open(self, env: EnvState, node: Call) -> Gen:
        name = node.provider or ""
        inputs_node = node.args[0]
        assert inputs_node is not None
        inputs = yield from self.arg(env, inputs_node)
        provider = self.run.providers.get(name)
        if provider is None:
            suggestion = did_you_mean(name, self.run.providers)
            self.run.error(
                env,
                f'unknown provider "{name}"' + (f'; did you mean "{suggestion}"?' if suggestion else ""),
                node,
                "providers available here: " + (", ".join(sorted(self.run.providers)) or "none"),
            )
            return self.run.unknown(env, node)
        if not inputs.unknown and kind_of(inputs) != "object":
            self.run.error(
                env, f"expected object, got {kind_of(inputs)}", inputs_node, "give the provider an object of inputs"
            )
            return self.run.unknown(env, node)
        if inputs.has_unknown:
            return self.run.unknown(env, node, inputs.has_secret)
        data = plain(inputs)
        schema = getattr(provider, "schema", None)
        if schema is not None:
            problems = validate(data, schema)
            if problems:
                self.schema_errors(env, problems, inputs_node)
                return self.run.unknown(env, node, inputs.has_secret)
        try:
            out = provider.open(data, env.context_plain)
        except Exception as exc:  # a provider's failure is a diagnostic
            if inputs.has_secret:
                message = f'provider "{name}" failed (its message is withheld: its inputs hold secrets)'
            else:
                message = str(exc) or f'provider "{name}" failed ({type(exc).__name__})'
            self.run.error(env, message, node, f'check the inputs of provider "{name}"')
            return self.run.unknown(env, node, inputs.has_secret)
        return self.provider_result(env, node, name, out)

    def call_rotate(self, env: EnvState, node: Call) -> Gen:
        name = node.provider or ""
        inputs_node, state_node = node.args
        assert inputs_node is not None
        rotator = self.run.rotators.get(name)
        inputs_schema = getattr(rotator, "inputs_schema", None) if rotator is not None else None
        rotate_only = _rotate_only(inputs_schema)
        if isinstance(inputs_node, Obj) and rotate_only:
            fields: dict[str, EvalValue] = {}
            for key, child in inputs_node.entries.items():
                if key not in rotate_only:
                    fields[key] = yield from self.arg(env, child)
            inputs = container(fields, False, env.name, inputs_node)
        else:
            inputs = yield from self.arg(env, inputs_node)
        state = (yield from self.arg(env, state_node)) if state_node is not None else None
        if rotator is None:
            suggestion = did_you_mean(name, self.run.rotators)
            self.run.error(
                env,
                f'unknown rotator "{name}"' + (f'; did you mean "{suggestion}"?' if suggestion else ""),
                node,
                "rotators available here: " + (", ".join(sorted(self.run.rotators)) or "none"),
            )
            return self.run.unknown(env, node)
        secret = inputs.has_secret or (state is not None and state.has_secret)
        if inputs.has_unknown or (state is not None and state.has_unknown):
            return self.run.unknown(env, node, secret)
        data = plain(inputs)
        state_data = None if state is None else plain(state)
        ok = True
        if inputs_schema is not None:
            problems = validate(data, _without_required(inputs_schema, rotate_only))
            if problems:
                self.schema_errors(env, problems, inputs_node)
                ok = False
        state_schema = getattr(rotator, "state_schema", None)
        if state_schema is not None:
            problems = validate(state_data, {"oneOf": [state_schema, {"type": "null"}]})
            if problems:
                self.schema_errors(env, problems, state_node if state_node is not None else node)
                ok = False
        if not ok:
            return self.run.unknown(env, node, secret)
        try:
            out = rotator.open(data, state_data, env.context_plain)
        except Exception as exc:  # a rotator's failure is a diagnostic
            message = (
                f'rotator "{name}" failed (its message is withheld: its inputs hold secrets)'
                if secret
                else (str(exc) or f'rotator "{name}" failed ({type(exc).__name__})')
            )
            self.run.error(env, message, node, f'check the inputs and state of rotator "{name}"')
            return self.run.unknown(env, node, secret)
        return self.provider_result(env, node, name, out)


def kind_article(kind: str) -> str:
    return {"array": "an array", "object": "an object"}.get(kind, f"a {kind}")


def _locate(node: Node, rel: tuple[str | int, ...]) -> tuple[Node, tuple[str | int, ...]]:
    """The deepest written node along ``rel`` below ``node``, and the rest of the path."""
    i = 0
    while i < len(rel):
        key = rel[i]
        if isinstance(node, Obj) and isinstance(key, str) and key in node.entries:
            node = node.entries[key]
        elif isinstance(node, Arr) and isinstance(key, int) and 0 <= key < len(node.items):
            node = node.items[key]
        else:
            break
        i += 1
    return node, rel[i:]


def _rotate_only(schema: Any) -> frozenset[str]:
    if not isinstance(schema, Mapping):
        return frozenset()
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return frozenset()
    return frozenset(k for k, s in props.items() if isinstance(s, Mapping) and s.get("rotateOnly") is True)


def _without_required(schema: Any, names: frozenset[str]) -> Any:
    if not names or not isinstance(schema, Mapping) or not isinstance(schema.get("required"), list):
        return schema
    out = dict(schema)
    out["required"] = [r for r in schema["required"] if r not in names]
    return out

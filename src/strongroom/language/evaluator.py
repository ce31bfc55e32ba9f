"""``evaluate``: a compiled definition, its imports and its references, to an ``Evaluation``.

The evaluator follows Pulumi ESC's semantics: imports are evaluated once each, in
order, and merged (JSON merge patch, ``null`` does not delete) under the
environment's own values; a reference walks the *unevaluated* tree, so an object may
refer to its own members; a value is merged with the value at the same path below
it; a node evaluated while it is being evaluated is a cycle, reported where it is
re-entered. Evaluation is iterative: each node is a generator that yields the nodes
it needs and a small trampoline drives them, so neither long reference chains nor
deep values exhaust Python's stack. ``Limits`` bound everything else.
"""

from __future__ import annotations

__all__ = ["ANONYMOUS_ENVIRONMENT", "Evaluation", "Run", "evaluate"]

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast

from strongroom.language.builtins import Builtins
from strongroom.language.compiler import Compiled
from strongroom.language.diagnostics import ERROR, WARNING, LangDiagnostic, did_you_mean
from strongroom.language.evaluation import Evaluation
from strongroom.language.interpolation import Access, format_access
from strongroom.language.limits import DEFAULT_LIMITS, Limits
from strongroom.language.nodes import ARR, BAD, CALL, INTERP, LIT, OBJ, SECRET, SYM, Arr, Interp, Node, Obj, Sym
from strongroom.language.paths import Path, format_path
from strongroom.language.providers import LoadError, Provider, Rotator
from strongroom.language.state import BUSY, DONE, Decrypter, EnvState, Gen, Loader, where
from strongroom.language.values import (
    Budget,
    EvalValue,
    LimitExceeded,
    container,
    from_plain,
    go_string,
    kind_of,
    with_flags,
)

#: The name of an environment evaluated from text with no name of its own (as ESC calls it).
ANONYMOUS_ENVIRONMENT = "<yaml>"

_PENDING: Any = object()


class Run:
    """One call of ``evaluate``: the environments evaluated so far, the diagnostics, the budgets."""

    def __init__(
        self,
        root: str,
        load: Loader,
        decrypt: Decrypter | None,
        providers: Mapping[str, Provider],
        rotators: Mapping[str, Rotator],
        context: Mapping[str, Any],
        limits: Limits,
    ) -> None:
        self.load = load
        self.decrypt = decrypt
        self.providers = providers
        self.rotators = rotators
        self.limits = limits
        self.envs: dict[str, EnvState] = {}
        self.loaded: dict[str, tuple[str, Compiled] | str] = {}
        self.diags: list[LangDiagnostic] = []
        self.budget = Budget(limits.max_total_string_length, limits.max_string_length)
        self.steps = 0
        self.stopped = False
        self.import_depth = 0
        #: Environments being evaluated, outermost first (to name import cycles).
        self.active: list[str] = []
        self.builtins = Builtins(self)
        self.context_plain = dict(context)
        try:
            self.context_value = from_plain(
                self.context_plain,
                False,
                None,
                None,
                max_depth=limits.max_value_depth,
                max_nodes=limits.max_value_nodes,
            )
        except (TypeError, LimitExceeded) as exc:
            self.diags.append(
                LangDiagnostic(
                    f"the execution context is not usable ({exc})",
                    ERROR,
                    root,
                    hint="pass plain JSON-like data as the context",
                )
            )
            self.context_plain = {}
            self.context_value = container({}, False, None, None)

    # -- diagnostics ---------------------------------------------------------------------------

    def error(
        self,
        env: EnvState,
        summary: str,
        node: Node | None,
        hint: str | None = None,
        *,
        offset: int | None = None,
        path: Path | None = None,
        severity: str = ERROR,
    ) -> None:
        line, col = where(node, offset) if node is not None else (None, None)
        at = path if path is not None else (node.path if node is not None else ())
        self.diags.append(LangDiagnostic(summary, severity, env.name, line, col, format_path(at, "values"), hint))

    def unknown(self, env: EnvState, node: Node | None, secret: bool = False, stringy: bool = False) -> EvalValue:
        v = EvalValue(None, secret, True, env.name, node)
        v.stringy = stringy
        return v

    def spend(self, env: EnvState, node: Node, n: int) -> bool:
        try:
            self.budget.spend(n)
        except LimitExceeded as exc:
            self.limit_error(env, node, exc)
            return False
        return True

    def limit_error(self, env: EnvState, node: Node, exc: LimitExceeded) -> None:
        self.error(
            env, f"{exc}", node, "this looks like runaway growth (e.g. a string doubled again and again); simplify it"
        )

    # -- environments --------------------------------------------------------------------------

    def env_value(self, name: str, compiled: Compiled, root_name: str, *, imported: bool) -> EvalValue:
        env = EnvState(name, compiled, root_name)
        self.envs[name] = env
        self.active.append(name)
        if imported:
            self.diags.extend(
                d if d.environment == name else replace(d, environment=name) for d in compiled.diagnostics
            )
        context = dict(self.context_value.value)
        context["rootEnvironment"] = container(
            {"name": EvalValue(root_name, False, False, None, None)}, False, None, None
        )
        context["currentEnvironment"] = container(
            {"name": EvalValue(name, False, False, None, None)}, False, None, None
        )
        env.context = container(context, False, None, None)
        env.context_plain = {
            **self.context_plain,
            "rootEnvironment": {"name": root_name},
            "currentEnvironment": {"name": name},
        }
        for decl in compiled.imports:
            value = self.import_env(env, decl.name, decl.line, decl.column, f"imports[{decl.index}]")
            if value is None:
                continue
            env.imports[decl.name] = value
            if decl.merge:
                env.base = self.merge(env.base, value)
        env.imports_value = container(dict(env.imports), False, None, None)
        value = self.run(env, env.root, env.base)
        env.value = value
        env.evaluating = False
        self.active.pop()
        return value

    def child_root(self, env: EnvState, child: str) -> str:
        return child if env.root_name in ("", ANONYMOUS_ENVIRONMENT) else env.root_name

    def import_env(self, env: EnvState, written: str, line: int | None, col: int | None, path: str) -> EvalValue | None:
        def report(summary: str, hint: str) -> None:
            self.diags.append(LangDiagnostic(summary, ERROR, env.name, line, col, path, hint))

        loaded = self.loaded.get(written)
        if loaded is None:
            try:
                loaded = self.load(written)
            except LoadError as exc:
                loaded = str(exc) or f'environment "{written}" could not be loaded'
            except Exception as exc:  # a failing loader is reported where it was asked
                loaded = f'environment "{written}" could not be loaded ({type(exc).__name__})'
            self.loaded[written] = loaded
        if isinstance(loaded, str):
            report(loaded, "check the environment's name, and that you may read it")
            return None
        canonical, compiled = loaded
        other = self.envs.get(canonical)
        if other is not None:
            if other.evaluating:
                chain = [*self.active[self.active.index(canonical) :], canonical]
                report(
                    f"cyclic import of {written}",
                    f"the imports form a cycle ({' -> '.join(chain)}); remove one of them",
                )
                return None
            return other.value
        if self.import_depth >= self.limits.max_import_depth:
            report(
                f"imports are nested more than {self.limits.max_import_depth} levels deep",
                "flatten the chain of imports",
            )
            return None
        self.import_depth += 1
        try:
            return self.env_value(canonical, compiled, self.child_root(env, canonical), imported=True)
        finally:
            self.import_depth -= 1

    # -- the trampoline ------------------------------------------------------------------------

    def run(self, env: EnvState, node: Node, base: EvalValue | None) -> EvalValue:
        stack: list[tuple[Gen, Node, EvalValue | None]] = []
        result = self.begin(env, node, base, stack)
        while stack:
            gen, gnode, gbase = stack[-1]
            try:
                # A new generator must first be sent None; mypy cannot see that in the Gen type.
                request = gen.send(cast(EvalValue, None) if result is _PENDING else result)
            except StopIteration as stop:
                stack.pop()
                result = self.finish(env, gnode, gbase, stop.value)
                continue
            result = self.begin(env, request[0], request[1], stack)
        return result  # type: ignore[no-any-return]

    def begin(
        self, env: EnvState, node: Node, base: EvalValue | None, stack: list[tuple[Gen, Node, EvalValue | None]]
    ) -> Any:
        idx = node.idx
        state = env.state[idx]
        if state == DONE:
            return env.memo[idx]
        if state == BUSY:
            self.error(env, f"cyclic reference to {format_path(node.path)}", node, _cycle_hint(node, stack))
            return self.unknown(env, node)
        self.steps += 1
        if self.steps > self.limits.max_steps:
            if not self.stopped:
                self.stopped = True
                self.error(
                    env, f"evaluation stopped after {self.limits.max_steps} steps", node, "simplify the definition"
                )
            return self.unknown(env, node)
        kind = node.kind
        if kind == LIT:
            return self.lit(env, node, base)
        if kind in (SECRET, BAD):
            v = self.builtins.secret(env, node) if kind == SECRET else self.unknown(env, node)  # type: ignore[arg-type]
            v = self.merge(base, v) if base is not None else v
            env.state[idx] = DONE
            env.memo[idx] = v
            return v
        if len(stack) >= self.limits.max_reference_depth:
            self.error(
                env,
                f"references are nested more than {self.limits.max_reference_depth} deep",
                node,
                "shorten the chain of values that refer to each other",
            )
            v = self.unknown(env, node)
            env.state[idx] = DONE
            env.memo[idx] = v
            return v
        env.state[idx] = BUSY
        gen: Gen
        if kind == OBJ:
            gen = self.g_obj(env, node, base)  # type: ignore[arg-type]
        elif kind == ARR:
            gen = self.g_arr(env, node)  # type: ignore[arg-type]
        elif kind == SYM:
            gen = self.g_sym(env, node)  # type: ignore[arg-type]
        elif kind == INTERP:
            gen = self.g_interp(env, node)  # type: ignore[arg-type]
        else:
            assert kind == CALL
            gen = self.builtins.call(env, node)  # type: ignore[arg-type]
        stack.append((gen, node, base))
        return _PENDING

    def finish(self, env: EnvState, node: Node, base: EvalValue | None, v: EvalValue) -> EvalValue:
        if base is not None and node.kind != OBJ:
            v = self.merge(base, v)
        if v.height > self.limits.max_value_depth or v.size > self.limits.max_value_nodes:
            if node.kind in (OBJ, ARR) and not v.unknown:
                v = self.trim(env, node, v)
            else:
                self.too_big(env, node, v)
                v = self.unknown(env, node, v.has_secret)
        env.state[node.idx] = DONE
        env.memo[node.idx] = v
        return v

    def too_big(self, env: EnvState, node: Node | None, v: EvalValue, env_name: str | None = None) -> None:
        what = (
            f"nested more than {self.limits.max_value_depth} levels deep"
            if v.height > self.limits.max_value_depth - (0 if env_name is None else 1)
            else f"made of more than {self.limits.max_value_nodes} elements"
        )
        line, col = (node.line, node.col) if node is not None else (None, None)
        self.diags.append(
            LangDiagnostic(
                f"this value would be {what}",
                ERROR,
                env_name or env.name,
                line,
                col,
                format_path(node.path if node is not None else (), "values"),
                "this looks like runaway growth (a value repeated into itself again and again); simplify it",
            )
        )

    def trim(self, env: EnvState, node: Node, v: EvalValue) -> EvalValue:
        """A written list or object grew too big: make its biggest members unknown until it fits."""
        limits = self.limits
        value = v.value
        items: list[tuple[Any, EvalValue]] = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        replaced: dict[Any, EvalValue] = {}
        size = v.size
        for key, child in sorted(items, key=lambda kv: -kv[1].size):
            deep = child.height >= limits.max_value_depth
            if not deep and size <= limits.max_value_nodes:
                continue
            if len(replaced) >= 100:
                self.too_big(env, node, v)
                return self.unknown(env, node, v.has_secret)
            self.too_big(env, child.node, child, child.env or env.name)
            replaced[key] = self.unknown(env, child.node, child.has_secret)
            size -= child.size - 1
        if isinstance(value, dict):
            out: Any = {k: replaced.get(k, c) for k, c in value.items()}
        else:
            out = [replaced.get(i, c) for i, c in enumerate(value)]
        trimmed = container(out, v.secret, v.env, v.node)
        trimmed.partial = v.partial
        if v.own is not None:
            trimmed.own = {k: replaced.get(k, c) for k, c in v.own.items()}
        return trimmed

    def lit(self, env: EnvState, node: Node, base: EvalValue | None) -> EvalValue:
        idx = node.idx
        if env.state[idx] == DONE:
            return env.memo[idx]  # type: ignore[return-value]
        v = EvalValue(node.value, False, False, env.name, node)  # type: ignore[attr-defined]
        if base is not None:
            v = self.merge(base, v)
        env.state[idx] = DONE
        env.memo[idx] = v
        return v

    # -- merging -------------------------------------------------------------------------------

    def merge(self, base: EvalValue | None, top: EvalValue) -> EvalValue:
        """``top`` over ``base``: objects merge key by key, anything else replaces; finals win."""
        if base is None or base is top:
            return top
        if base.final:
            self.warn_final(top)
            return base
        tv = top.value
        if type(tv) is dict and not top.unknown:
            bv = base.value
            if type(bv) is dict and not base.unknown:
                out = dict(bv)
                for key, child in tv.items():
                    below = bv.get(key)
                    out[key] = child if below is None else self.merge(below, child)
                merged = container(out, top.secret, top.env, top.node)
                merged.partial = top.partial
                merged.own = top.own if top.own is not None else tv
                return merged
            if base.unknown and not top.partial:
                top = with_flags(top)
                top.partial = True
        return top

    def warn_final(self, top: EvalValue) -> None:
        node = top.node
        line, col = (node.line, node.col) if node is not None else (None, None)
        self.diags.append(
            LangDiagnostic(
                "cannot override final value",
                WARNING,
                top.env,
                line,
                col,
                format_path(node.path, "values") if node is not None else "",
                "an imported environment marks this value fn::final, so it keeps the imported value; "
                "remove this override",
            )
        )

    # -- containers and references -------------------------------------------------------------

    def g_obj(self, env: EnvState, node: Obj, base: EvalValue | None) -> Gen:
        base_dict = base.value if base is not None and not base.unknown and type(base.value) is dict else None
        entries = node.entries
        results: dict[str, EvalValue] = {}
        for key in node.order:
            child = entries[key]
            below = base_dict.get(key) if base_dict is not None else None
            if child.kind == LIT:
                results[key] = self.lit(env, child, below)
            else:
                results[key] = yield (child, below)
        if base is not None and base.final:
            self.warn_final(EvalValue(None, False, False, env.name, node))
            return base
        own = {key: results[key] for key in entries}
        if base_dict is not None:
            out = dict(base_dict)
            out.update(own)
        else:
            out = own
        v = container(out, False, env.name, node)
        if base_dict is not None:
            v.own = own
        if base is not None and base.unknown:
            v.partial = True
        return v

    def g_arr(self, env: EnvState, node: Arr) -> Gen:
        items: list[EvalValue] = []
        for child in node.items:
            if child.kind == LIT:
                items.append(self.lit(env, child, None))
            else:
                items.append((yield (child, None)))
        return container(items, False, env.name, node)

    def g_sym(self, env: EnvState, node: Sym) -> Gen:
        v = yield from self.access(env, node, node.access)
        if v.node is not node:
            v = with_flags(v, env=env.name, node=node)
        return v

    def g_interp(self, env: EnvState, node: Interp) -> Gen:
        pieces: list[str] = []
        unknown = secret = False
        for text, access in node.parts:
            if text:
                pieces.append(text)
            if access is None:
                continue
            v = yield from self.access(env, node, access)
            try:
                s, u, sec = go_string(v, self.budget)
            except LimitExceeded as exc:
                self.limit_error(env, node, exc)
                return self.unknown(env, node, v.has_secret, True)
            unknown, secret = unknown or u, secret or sec
            if not u:
                pieces.append(s)
        if unknown:
            return self.unknown(env, node, secret, True)
        if not self.spend(env, node, sum(len(p) for p in pieces)):
            return self.unknown(env, node, secret, True)
        return EvalValue("".join(pieces), secret, False, env.name, node)

    def access(self, env: EnvState, node: Node, access: Access) -> Gen:
        keys = access.keys
        first = keys[0]
        if first == "imports":
            return self.value_access(env, node, access, 1, env.imports_value)
        if first == "context":
            return self.value_access(env, node, access, 1, env.context)
        if first == "environments":
            return self.environments(env, node, access)
        receiver: Node = env.root
        below: EvalValue | None = env.base
        i, n = 0, len(keys)
        while i < n:
            key = keys[i]
            kind = receiver.kind
            if kind == ARR:
                items = receiver.items  # type: ignore[attr-defined]
                index = self.array_index(env, node, access, i, len(items))
                if index is None:
                    return self.unknown(env, node)
                receiver, below = items[index], None
            elif kind == OBJ:
                if not isinstance(key, str):
                    self.error(
                        env,
                        "cannot access an object property using an integer index",
                        node,
                        'use a key: ${name.key} or ${name["key"]}',
                        offset=access.offsets[i],
                    )
                    return self.unknown(env, node)
                entries: dict[str, Node] = receiver.entries  # type: ignore[attr-defined]
                child = entries.get(key)
                if child is None:
                    if below is not None and (below.unknown or type(below.value) is dict):
                        return self.value_access(env, node, access, i, below)
                    self.unknown_property(env, node, access, i, entries.keys())
                    return self.unknown(env, node)
                if below is not None:
                    below = below.value.get(key) if not below.unknown and type(below.value) is dict else None
                receiver = child
            else:
                v = yield (receiver, below)
                return self.value_access(env, node, access, i, v)
            i += 1
        return (yield (receiver, below))

    def unknown_property(self, env: EnvState, node: Node, access: Access, i: int, keys: Any) -> None:
        key = str(access.keys[i])
        suggestion = did_you_mean(key, [k for k in keys if isinstance(k, str)])
        summary = f'unknown property "{key}"' + (f'; did you mean "{suggestion}"?' if suggestion else "")
        where = format_access(access.keys[:i]) or "the top level"
        self.error(
            env,
            summary,
            node,
            f"{where} has no such key; check the spelling, or define it",
            offset=access.offsets[i],
        )

    def array_index(
        self, env: EnvState, node: Node, access: Access, i: int, length: int, *, hide_length: bool = False
    ) -> int | None:
        key = access.keys[i]
        offset = access.offsets[i]
        if not isinstance(key, int):
            self.error(
                env,
                "cannot access an array element using a property name",
                node,
                "use an index: ${name[0]}",
                offset=offset,
            )
            return None
        if key < 0:
            self.error(env, "array indices must not be negative", node, "indexes count from 0", offset=offset)
            return None
        if key >= length:
            if hide_length:
                self.error(env, f"array index {key} out-of-bounds for a secret array", node, "use a smaller index")
                return None
            self.error(
                env,
                f"array index {key} out-of-bounds for array of length {length}",
                node,
                f"use an index from 0 to {length - 1}" if length else "the list is empty",
                offset=offset,
            )
            return None
        return key

    def value_access(self, env: EnvState, node: Node, access: Access, i: int, v: EvalValue) -> EvalValue:
        keys = access.keys
        secret = False
        n = len(keys)
        while i < n:
            if v.unknown:
                if v.stringy:
                    self.error(
                        env,
                        "receiver must be an array or an object",
                        node,
                        f"{format_access(keys[:i])} is a string, so it has no {format_access(keys[i : i + 1])}",
                        offset=access.offsets[i],
                    )
                    return self.unknown(env, node)
                return self.unknown(env, node, secret or v.secret)
            if v.secret:
                secret = True
            value = v.value
            key = keys[i]
            if type(value) is list:
                index = self.array_index(env, node, access, i, len(value), hide_length=secret)
                if index is None:
                    return self.unknown(env, node)
                v = value[index]
            elif type(value) is dict:
                if not isinstance(key, str):
                    self.error(
                        env,
                        "cannot access an object property using an integer index",
                        node,
                        'use a key: ${name.key} or ${name["key"]}',
                        offset=access.offsets[i],
                    )
                    return self.unknown(env, node)
                child = value.get(key)
                if child is None:
                    if v.partial:
                        return self.unknown(env, node, secret)
                    # A secret object's keys are part of the secret: suggest none of them.
                    self.unknown_property(env, node, access, i, () if secret else value.keys())
                    return self.unknown(env, node)
                v = child
            else:
                self.error(
                    env,
                    "receiver must be an array or an object",
                    node,
                    f"{format_access(keys[:i])} is {kind_of(v)}, so it has no {format_access(keys[i : i + 1])}",
                    offset=access.offsets[i],
                )
                return self.unknown(env, node)
            i += 1
        if secret and not v.secret:
            v = with_flags(v, secret=True)
        return v

    def environments(self, env: EnvState, node: Node, access: Access) -> EvalValue:
        keys = access.keys
        if len(keys) < 3:
            return self.unknown(env, node)
        project, name = keys[1], keys[2]
        for i, key in ((1, project), (2, name)):
            if not isinstance(key, str):
                self.error(
                    env,
                    "cannot access an object property using an integer index",
                    node,
                    "write ${environments.PROJECT.ENV.key}",
                    offset=access.offsets[i],
                )
                return self.unknown(env, node)
        qualified = f"{project}/{name}"
        line, col = node.line, node.col
        value = self.import_env(env, qualified, line, col, format_path(node.path, "values"))
        if value is None:
            return self.unknown(env, node)
        return self.value_access(env, node, access, 3, value)


def _cycle_hint(node: Node, stack: list[tuple[Gen, Node, EvalValue | None]]) -> str:
    """Name the references that form a cycle back to ``node``."""
    nodes = [n for _, n, _ in stack]
    start = next((i for i, n in enumerate(nodes) if n is node), len(nodes))
    sites = [n for n in nodes[start:] if n is node or n.kind in (SYM, INTERP, CALL)]
    chain = " -> ".join(format_path(n.path) or "<root>" for n in [*sites, node])
    return f"the references form a cycle ({chain}); a value cannot depend on itself, so break it"


def _dedupe(diags: list[LangDiagnostic]) -> tuple[LangDiagnostic, ...]:
    seen: set[LangDiagnostic] = set()
    out: list[LangDiagnostic] = []
    for d in diags:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return tuple(out)


def evaluate(
    root: str,
    compiled: Compiled,
    *,
    load: Loader,
    decrypt: Decrypter | None,
    providers: Mapping[str, Provider],
    context: Mapping[str, Any],
    rotators: Mapping[str, Rotator] | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Evaluation:
    """Evaluate ``compiled`` as environment ``root``.

    ``load(name as written)`` returns ``(canonical name, Compiled)`` or raises ``LoadError``.
    ``decrypt(env, token)`` returns a secret's plaintext; ``None`` evaluates masked: no
    secret is decrypted, and everything computed from one is an opaque secret.
    ``providers``/``rotators`` serve ``fn::open``/``fn::rotate``; ``context`` is the
    execution context (``${context.pulumi.user.id}`` ...). Never raises for problems in
    definitions: they are diagnostics.
    """
    run = Run(root, load, decrypt, providers, rotators or {}, context, limits)
    try:
        value = run.env_value(root, compiled, root, imported=False)
    except RecursionError:  # defensive: every walk is bounded, so this should be unreachable
        run.diags.append(
            LangDiagnostic("the definition is too deeply nested to evaluate", ERROR, root, hint="flatten it")
        )
        value = container({}, False, root, None)
    return Evaluation(root, value, _dedupe(run.diags), decrypt is None)

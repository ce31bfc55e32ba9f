"""``compile_definition``: YAML text to a ``Compiled`` definition, with static checks.

Compiling never raises for a user's mistake: every problem becomes a diagnostic in
``Compiled.diagnostics`` (with environment, line, column and path), and the rest of
the definition is still compiled so that all problems are reported at once. The
checks and their wording follow Pulumi ESC's loader. ``Compiled.to_json`` /
``from_json`` are the cache stored next to the YAML; reading it needs no YAML parser.
"""

from __future__ import annotations

__all__ = ["BUILTINS", "Compiled", "ImportDecl", "cached_outline", "compile_definition"]

import json
from dataclasses import dataclass
from typing import Any

from strongroom.language.diagnostics import ERROR, WARNING, LangDiagnostic, did_you_mean
from strongroom.language.interpolation import parse_template
from strongroom.language.limits import DEFAULT_LIMITS, Limits
from strongroom.language.nodes import (
    Arr,
    Bad,
    Call,
    Interp,
    Lit,
    Node,
    Obj,
    Secret,
    Sym,
    decode_node,
    encode_node,
)
from strongroom.language.paths import Path, format_path
from strongroom.language.yaml_reader import YMap, YNode, YScalar, YSeq, flow_nesting_exceeds, read_yaml

#: The cache format's version; ``from_json`` refuses any other.
CACHE_VERSION = 2

BUILTINS = (
    "fn::concat",
    "fn::final",
    "fn::fromBase64",
    "fn::fromJSON",
    "fn::join",
    "fn::open",
    "fn::rotate",
    "fn::secret",
    "fn::split",
    "fn::toBase64",
    "fn::toJSON",
    "fn::toString",
    "fn::validate",
)
_BUILTIN_SET = frozenset(BUILTINS)
_SINGLE_ARG = frozenset({"fn::final", "fn::fromBase64", "fn::fromJSON", "fn::toBase64", "fn::toJSON", "fn::toString"})
_TOP_LEVEL_KEYS = ("imports", "values", "description", "rotation")
#: At most this many YAML nodes are read from a ``rotation:`` block (aliases can expand).
_MAX_ROTATION_NODES = 200_000
_RESERVED_VALUE_KEYS = frozenset({"imports", "context", "environments"})


@dataclass(frozen=True, slots=True)
class ImportDecl:
    """One entry of ``imports``: the name as written (``proj/env``, ``proj/env@stable``, ``a``)."""

    name: str
    merge: bool
    line: int | None
    column: int | None
    index: int


class Compiled:
    """A compiled definition: imports, the values tree and the diagnostics found compiling it."""

    __slots__ = ("description", "diagnostics", "env", "imports", "node_count", "rotation", "values")

    def __init__(
        self,
        env: str,
        imports: tuple[ImportDecl, ...],
        values: Obj | None,
        description: str | None,
        diagnostics: tuple[LangDiagnostic, ...],
        node_count: int,
        rotation: dict[str, Any] | None = None,
    ) -> None:
        self.env = env
        #: The ``rotation:`` block as plain JSON data: canonical value path -> checked metadata.
        self.rotation = rotation
        self.imports = imports
        self.values = values
        self.description = description
        self.diagnostics = diagnostics
        self.node_count = node_count

    def __repr__(self) -> str:
        return f"Compiled(env={self.env!r}, imports={len(self.imports)}, diagnostics={len(self.diagnostics)})"

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def to_json(self) -> str:
        data = {
            "v": CACHE_VERSION,
            "env": self.env,
            "imports": [[i.name, i.merge, i.line, i.column] for i in self.imports],
            "values": None if self.values is None else encode_node(self.values),
            "description": self.description,
            "diags": [d.to_json() for d in self.diagnostics],
        }
        if self.rotation:
            data["rotation"] = self.rotation
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str) -> Compiled:
        """Rebuild from ``to_json``; ``ValueError`` for another version or malformed data."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("v") != CACHE_VERSION:
                raise ValueError(f"not a version {CACHE_VERSION} compiled definition")
            counter = [0]
            values = None if raw["values"] is None else decode_node(raw["values"], (), counter)
            if values is not None and not isinstance(values, Obj):
                raise ValueError("the values of a compiled definition must be an object")
            imports = tuple(
                ImportDecl(name, merge, line, col, i) for i, (name, merge, line, col) in enumerate(raw["imports"])
            )
            diags = tuple(LangDiagnostic.from_json(d) for d in raw["diags"])
            rotation = raw.get("rotation")
            if rotation is not None and not isinstance(rotation, dict):
                raise ValueError("the rotation block of a compiled definition must be an object")
            return cls(raw["env"], imports, values, raw["description"], diags, counter[0], rotation)
        except (KeyError, TypeError, IndexError, RecursionError) as exc:
            raise ValueError(f"malformed compiled definition ({type(exc).__name__})") from None


def cached_outline(data: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(the imports as written, the top-level keys of ``values``) of a cache from ``Compiled.to_json``,
    without rebuilding its nodes; ``None`` for another version or malformed data."""
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("v") != CACHE_VERSION:
            return None
        values = raw["values"]
        keys = () if values is None or values[0] != Obj.kind else tuple(str(entry[0]) for entry in values[3])
        return tuple(str(i[0]) for i in raw["imports"]), keys
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def _kind(node: YNode | None) -> str:
    if isinstance(node, YMap):
        return "an object"
    if isinstance(node, YSeq):
        return "a list"
    if node is None or node.value is None:
        return "null"
    if isinstance(node.value, bool):
        return "a boolean"
    if isinstance(node.value, int | float):
        return "a number"
    return "a string"


def _literal_string(node: YNode | None) -> str | None:
    """The string a scalar denotes if it is a string literal without references (``$$`` unescaped)."""
    if not isinstance(node, YScalar) or not isinstance(node.value, str):
        return None
    value: str = node.value
    if "$" not in value:
        return value
    parts, diags = parse_template(value)
    if diags or any(access is not None for _, access in parts):
        return None
    return "".join(text for text, _ in parts)


class _Compiler:
    def __init__(self, env: str, limits: Limits) -> None:
        self.env = env
        self.limits = limits
        self.diags: list[LangDiagnostic] = []
        self.count = 0
        self.too_many = False

    # -- diagnostics ---------------------------------------------------------------------------

    def error(
        self,
        summary: str,
        at: YNode | tuple[int | None, int | None] | None,
        path: str,
        hint: str | None = None,
        severity: str = ERROR,
    ) -> None:
        if isinstance(at, tuple):
            line, col = at
        elif at is None:
            line = col = None
        else:
            line, col = at.line, at.col
        self.diags.append(LangDiagnostic(summary, severity, self.env, line, col, path, hint))

    @staticmethod
    def vpath(path: Path) -> str:
        return format_path(path, "values")

    # -- expressions ---------------------------------------------------------------------------

    def expr(self, y: YNode, path: Path, depth: int) -> Node:
        self.count += 1
        if self.count > self.limits.max_nodes:
            if not self.too_many:
                self.too_many = True
                self.error(
                    f"the definition expands to more than {self.limits.max_nodes} values",
                    y,
                    self.vpath(path),
                    "remove YAML aliases that repeat large parts, or split the environment",
                )
            return Bad(y.line, y.col, path)
        if depth > self.limits.max_depth:
            self.error(
                f"values are nested more than {self.limits.max_depth} levels deep",
                y,
                self.vpath(path),
                "flatten this value; deeper nesting is not supported",
            )
            return Bad(y.line, y.col, path)
        if isinstance(y, YScalar):
            if isinstance(y.value, str):
                return self.template(y, path)
            return Lit(y.line, y.col, path, y.value)
        if isinstance(y, YSeq):
            return Arr(
                y.line, y.col, path, tuple(self.expr(item, (*path, i), depth + 1) for i, item in enumerate(y.items))
            )
        return self.mapping(y, path, depth)

    def template(self, y: YScalar, path: Path) -> Node:
        value: str = y.value
        if "$" not in value:
            return Lit(y.line, y.col, path, value)
        parts, diags = parse_template(value)
        for offset, message in diags:
            col = y.col + y.qoff + offset if y.qoff >= 0 else y.col
            self.error(
                message, (y.line, col), self.vpath(path), 'write references as ${name.key}, ${list[0]} or ${obj["key"]}'
            )
        if not parts:
            return Lit(y.line, y.col, path, "")
        if len(parts) == 1:
            text, access = parts[0]
            if access is None:
                return Lit(y.line, y.col, path, text)
            if text == "":
                return Sym(y.line, y.col, path, access, y.qoff)
        return Interp(y.line, y.col, path, tuple(parts), y.qoff)

    def key_of(self, k: YNode, path: Path) -> str | None:
        """An object key: a string literal without references; ``None`` (reported) otherwise."""
        if isinstance(k, YScalar):
            text = k.text if not isinstance(k.value, str) else k.value
            if "$" not in text:
                return text
            parts, diags = parse_template(text)
            if not diags and all(access is None for _, access in parts):
                return "".join(t for t, _ in parts)
            self.error(
                "object keys must be strings",
                k,
                self.vpath((*path, text)),
                "a key cannot contain a reference; write $$ for a literal $",
            )
            return None
        self.error("object keys must be strings", k, self.vpath(path), "use a plain string as the key")
        return None

    def mapping(self, y: YMap, path: Path, depth: int) -> Node:
        if len(y.pairs) == 1:
            k, v = y.pairs[0]
            name = k.value if isinstance(k, YScalar) and isinstance(k.value, str) else None
            if name is not None and self.is_builtin(name):
                return self.builtin(y, name, k, v, path, depth)
            if name is not None and name.lower().startswith("fn::"):
                suggestion = did_you_mean(name, BUILTINS)
                self.error(
                    "'fn::' is a reserved prefix",
                    k,
                    self.vpath(path),
                    (f'did you mean "{suggestion}"? ' if suggestion else "")
                    + "built-in functions are "
                    + ", ".join(BUILTINS)
                    + "; write $$ or quote differently for another key",
                )
        else:
            for k, _ in y.pairs:
                if isinstance(k, YScalar) and isinstance(k.value, str) and k.value.startswith("fn::"):
                    self.error(
                        f'illegal call to builtin function: "{k.value}" must be the only key '
                        "within its containing object",
                        y,
                        self.vpath(path),
                        "move the call into its own value",
                    )
        return self.object(y, path, depth)

    def object(self, y: YMap, path: Path, depth: int) -> Obj:
        entries: dict[str, Node] = {}
        key_pos: dict[str, tuple[int | None, int | None]] = {}
        for k, v in y.pairs:
            key = self.key_of(k, path)
            if key is None:
                self.expr(v, (*path, "?"), depth + 1)
                continue
            child_path = (*path, key)
            if key in entries:
                self.error(
                    f'duplicate key "{key}"', k, self.vpath(child_path), "remove one of them; the first one is used"
                )
                self.expr(v, child_path, depth + 1)
                continue
            key_pos[key] = (k.line, k.col)
            entries[key] = self.expr(v, child_path, depth + 1)
        return Obj(y.line, y.col, path, entries, key_pos)

    # -- built-in calls ------------------------------------------------------------------------

    @staticmethod
    def is_builtin(name: str) -> bool:
        return name in _BUILTIN_SET or name.startswith(("fn::open::", "fn::rotate::"))

    def builtin(self, y: YMap, name: str, k: YNode, arg: YNode, path: Path, depth: int) -> Node:
        apath: Path = (*path, name)
        line, col = y.line, y.col
        if name == "fn::secret":
            return self.secret(y, arg, path, apath, depth)
        if name.startswith("fn::open::"):
            inputs = self.expr(arg, apath, depth + 1)
            return Call(line, col, path, "fn::open", name, name[len("fn::open::") :], (inputs,), ((),))
        if name.startswith("fn::rotate::"):
            return self.rotate(y, name, name[len("fn::rotate::") :], arg, path, apath, depth)
        if name == "fn::open":
            return self.open_long(y, arg, path, apath, depth)
        if name == "fn::rotate":
            return self.rotate(y, name, None, arg, path, apath, depth)
        if name in ("fn::join", "fn::split"):
            if not isinstance(arg, YSeq) or len(arg.items) != 2:
                self.error(
                    f"the argument to {name} must be a two-valued list",
                    arg,
                    self.vpath(apath),
                    f"write {name}: [DELIMITER, " + ("[STRINGS]]" if name == "fn::join" else "STRING]"),
                )
                self.expr(arg, apath, depth + 1)
                return Bad(line, col, path)
            first = self.expr(arg.items[0], (*apath, 0), depth + 2)
            second = self.expr(arg.items[1], (*apath, 1), depth + 2)
            return Call(line, col, path, name, name, None, (first, second), ((0,), (1,)))
        if name == "fn::concat":
            node = self.expr(arg, apath, depth + 1)
            if isinstance(node, Lit | Obj):
                self.error(
                    "the argument to fn::concat must be an array of arrays",
                    arg,
                    self.vpath(apath),
                    "write fn::concat: [[...], [...]]",
                )
            return Call(line, col, path, name, name, None, (node,), ((),))
        if name == "fn::validate":
            fields = self.fields(arg)
            if fields is None or "schema" not in fields or "value" not in fields:
                self.error(
                    "the argument to fn::validate must be an object containing 'schema' and 'value'",
                    arg,
                    self.vpath(apath),
                    "write fn::validate: {schema: {...}, value: ...}",
                )
                self.expr(arg, apath, depth + 1)
                return Bad(line, col, path)
            schema = self.expr(fields["schema"], (*apath, "schema"), depth + 2)
            value = self.expr(fields["value"], (*apath, "value"), depth + 2)
            return Call(line, col, path, name, name, None, (schema, value), (("schema",), ("value",)))
        # fn::final, fn::toJSON, fn::fromJSON, fn::toString, fn::toBase64, fn::fromBase64
        assert name in _SINGLE_ARG
        node = self.expr(arg, apath, depth + 1)
        return Call(line, col, path, name, name, None, (node,), ((),))

    @staticmethod
    def fields(arg: YNode) -> dict[str, YNode] | None:
        if not isinstance(arg, YMap):
            return None
        out: dict[str, YNode] = {}
        for k, v in arg.pairs:
            if isinstance(k, YScalar) and isinstance(k.value, str) and k.value not in out:
                out[k.value] = v
        return out

    def secret(self, y: YMap, arg: YNode, path: Path, apath: Path, depth: int) -> Node:
        if isinstance(arg, YMap) and len(arg.pairs) == 1:
            k, v = arg.pairs[0]
            token = _literal_string(v)
            if isinstance(k, YScalar) and k.value == "ciphertext" and token is not None:
                return Secret(y.line, y.col, path, None, token)
        plaintext = _literal_string(arg)
        if plaintext is None:
            self.expr(arg, apath, depth + 1)
            self.error(
                "secret values must be string literals",
                arg,
                self.vpath(apath),
                "write fn::secret: PLAINTEXT (quoted if it looks like a number), or {ciphertext: TOKEN} as stored",
            )
            plaintext = ""
        return Secret(y.line, y.col, path, plaintext, None)

    def open_long(self, y: YMap, arg: YNode, path: Path, apath: Path, depth: int) -> Node:
        fields = self.fields(arg)
        if fields is None:
            self.error(
                "the argument to fn::open must be an object containing 'provider' and 'inputs'",
                arg,
                self.vpath(apath),
                "write fn::open: {provider: NAME, inputs: {...}} or fn::open::NAME: {...}",
            )
            self.expr(arg, apath, depth + 1)
            return Bad(y.line, y.col, path)
        ok = True
        provider = self.provider_name(fields, arg, apath)
        if provider is None:
            ok = False
        inputs: Node | None = None
        if "inputs" in fields:
            inputs = self.expr(fields["inputs"], (*apath, "inputs"), depth + 2)
        else:
            ok = False
            self.error("missing provider inputs ('inputs')", arg, self.vpath(apath), "add inputs: {...}")
        if not ok or inputs is None:
            return Bad(y.line, y.col, path)
        return Call(y.line, y.col, path, "fn::open", "fn::open", provider, (inputs,), (("inputs",),))

    def provider_name(self, fields: dict[str, YNode], arg: YNode, apath: Path) -> str | None:
        if "provider" not in fields:
            self.error("missing provider name ('provider')", arg, self.vpath(apath), "add provider: NAME")
            return None
        name = _literal_string(fields["provider"])
        if name is None:
            self.error(
                "provider name must be a string literal",
                fields["provider"],
                self.vpath((*apath, "provider")),
                "write the provider's name, without references",
            )
        return name

    def rotate(self, y: YMap, key: str, provider: str | None, arg: YNode, path: Path, apath: Path, depth: int) -> Node:
        fields = self.fields(arg)
        if fields is None:
            wanted = "'inputs' and 'state'" if provider is not None else "'provider', 'inputs' and 'state'"
            self.error(
                f"the argument to fn::rotate must be an object containing {wanted}",
                arg,
                self.vpath(apath),
                "write fn::rotate::NAME: {inputs: {...}, state: {...}}",
            )
            self.expr(arg, apath, depth + 1)
            return Bad(y.line, y.col, path)
        ok = True
        if provider is None:
            provider = self.provider_name(fields, arg, apath)
            ok = provider is not None
        inputs: Node | None = None
        if "inputs" in fields:
            inputs = self.expr(fields["inputs"], (*apath, "inputs"), depth + 2)
        else:
            ok = False
            self.error("missing provider inputs ('inputs')", arg, self.vpath(apath), "add inputs: {...}")
        state: Node | None = None
        if "state" in fields:
            state_y = fields["state"]
            state = self.expr(state_y, (*apath, "state"), depth + 2)
            if not isinstance(state, Obj):
                ok = False
                self.error(
                    "rotation state must be an object literal",
                    state_y,
                    self.vpath((*apath, "state")),
                    "write state: {...} without references",
                )
        if not ok or inputs is None:
            return Bad(y.line, y.col, path)
        return Call(y.line, y.col, path, "fn::rotate", key, provider, (inputs, state), (("inputs",), ("state",)))

    # -- the document --------------------------------------------------------------------------

    def document(
        self, root: YNode | None
    ) -> tuple[tuple[ImportDecl, ...], Obj | None, str | None, dict[str, Any] | None]:
        if root is None or (isinstance(root, YScalar) and root.value is None):
            return (), None, None, None
        if not isinstance(root, YMap):
            self.error(
                f"a definition must be a YAML mapping with `values`, not {_kind(root)}",
                root,
                "",
                "start the definition with values: (and optionally imports:)",
            )
            return (), None, None, None
        seen: dict[str, YNode] = {}
        for k, v in root.pairs:
            name = k.value if isinstance(k, YScalar) and isinstance(k.value, str) else None
            if name is None:
                self.error("top-level keys must be strings", k, "", "use imports, values or description")
                continue
            if name in seen:
                self.error(f'duplicate key "{name}"', k, name, "remove one of them; the first one is used")
                continue
            seen[name] = v
            if name not in _TOP_LEVEL_KEYS:
                suggestion = did_you_mean(name, _TOP_LEVEL_KEYS)
                self.error(
                    f'unknown top-level key "{name}"' + (f'; did you mean "{suggestion}"?' if suggestion else ""),
                    k,
                    name,
                    "the top level holds imports, values, description and rotation; it is ignored",
                    severity=WARNING,
                )
        imports = self.imports(seen.get("imports"))
        values = self.values(seen.get("values"))
        description: str | None = None
        desc = seen.get("description")
        if desc is not None and not (isinstance(desc, YScalar) and desc.value is None):
            if isinstance(desc, YScalar) and isinstance(desc.value, str):
                description = desc.value
            else:
                self.error(
                    f"description must be a string, not {_kind(desc)}",
                    desc,
                    "description",
                    "write a one-line description",
                    severity=WARNING,
                )
        return imports, values, description, self.rotation(seen.get("rotation"))

    # -- rotation metadata ---------------------------------------------------------------------

    def plain(self, y: YNode, budget: list[int], depth: int = 0) -> Any:
        """A YAML node as plain JSON data (first of duplicate keys wins); bounded against alias bombs."""
        budget[0] -= 1
        if budget[0] < 0 or depth > self.limits.max_depth:
            return None
        if isinstance(y, YScalar):
            return y.value
        if isinstance(y, YSeq):
            return [self.plain(item, budget, depth + 1) for item in y.items]
        out: dict[str, Any] = {}
        for k, v in y.pairs:
            key = k.text if isinstance(k, YScalar) and not isinstance(k.value, str) else getattr(k, "value", None)
            if isinstance(key, str) and key not in out:
                out[key] = self.plain(v, budget, depth + 1)
        return out

    @staticmethod
    def locate(y: YNode, field: tuple[str | int, ...], at_key: bool) -> YNode:
        """The node of ``field`` inside an entry (its key when ``at_key``), or the nearest one found."""
        here: YNode = y
        for i, seg in enumerate(field):
            last = i == len(field) - 1
            if isinstance(here, YMap):
                for k, v in here.pairs:
                    if isinstance(k, YScalar) and k.value == seg:
                        if last and at_key:
                            return k
                        here = v
                        break
                else:
                    return here
            elif isinstance(here, YSeq) and isinstance(seg, int) and seg < len(here.items):
                here = here.items[seg]
            else:
                return here
        return here

    def rotation(self, node: YNode | None) -> dict[str, Any] | None:
        """The ``rotation:`` block: value path -> metadata, checked by ``strongroom.rotation.catalog``."""
        if node is None or (isinstance(node, YScalar) and node.value is None):
            return None
        if not isinstance(node, YMap):
            self.error(
                f"`rotation` must be a mapping of value paths to rotation metadata, not {_kind(node)}",
                node,
                "rotation",
                "write rotation: followed by indented PATH: {purpose: ..., schedule: ...} lines",
            )
            return None
        from strongroom.rotation.catalog import check_entry

        budget = [_MAX_ROTATION_NODES]
        out: dict[str, Any] = {}
        for k, v in node.pairs:
            if not (isinstance(k, YScalar) and isinstance(k.value, str)):
                self.error("rotation keys must be value paths", k, "rotation", 'for example pulumiConfig["a:b"]')
                continue
            where = f"rotation[{json.dumps(k.value, ensure_ascii=False)}]"
            canonical, entry, issues = check_entry(k.value, self.plain(v, budget))
            for issue in issues:
                at = k if not issue.field and issue.at_key else self.locate(v, issue.field, issue.at_key)
                path = where + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in issue.field)
                self.error(issue.summary, at, path, issue.hint, severity=issue.severity)
            if canonical is None or entry is None:
                continue
            if canonical in out:
                self.error(
                    f"duplicate rotation entry for {canonical}", k, where, "remove one of them; the first one is used"
                )
                continue
            out[canonical] = entry
        if budget[0] < 0:
            self.error(
                "the rotation block is too large", node, "rotation", "remove YAML aliases that repeat large parts"
            )
        return out

    def imports(self, node: YNode | None) -> tuple[ImportDecl, ...]:
        if node is None or (isinstance(node, YScalar) and node.value is None):
            return ()
        if not isinstance(node, YSeq):
            self.error(
                f"`imports` must be a list of environment names, not {_kind(node)}",
                node,
                "imports",
                "write imports: [project/env, ...]",
            )
            return ()
        out: list[ImportDecl] = []
        for i, item in enumerate(node.items):
            ipath = f"imports[{i}]"
            if isinstance(item, YScalar) and isinstance(item.value, str):
                if item.value == "":
                    self.error("import name must not be empty", item, ipath, "name an environment, e.g. project/env")
                    continue
                out.append(ImportDecl(item.value, True, item.line, item.col, i))
                continue
            if isinstance(item, YMap) and len(item.pairs) == 1:
                k, meta = item.pairs[0]
                if isinstance(k, YScalar) and isinstance(k.value, str) and k.value:
                    merge = self.import_meta(meta, ipath)
                    if merge is not None:
                        out.append(ImportDecl(k.value, merge, k.line, k.col, i))
                    continue
            self.error(
                "import must be a string or an object",
                item,
                ipath,
                "write - project/env, or - project/env: {merge: false}",
            )
        return tuple(out)

    def import_meta(self, meta: YNode, ipath: str) -> bool | None:
        if isinstance(meta, YScalar) and meta.value is None:
            return True
        if not isinstance(meta, YMap):
            self.error(f"import options must be an object, not {_kind(meta)}", meta, ipath, "write {merge: false}")
            return None
        merge = True
        for k, v in meta.pairs:
            key = k.value if isinstance(k, YScalar) else None
            if key == "merge":
                if isinstance(v, YScalar) and isinstance(v.value, bool):
                    merge = v.value
                else:
                    self.error("merge must be true or false", v, f"{ipath}.merge", "write merge: false")
                    return None
            else:
                suggestion = did_you_mean(str(key), ["merge"])
                self.error(
                    f'unknown import option "{key}"' + (f'; did you mean "{suggestion}"?' if suggestion else ""),
                    k,
                    ipath,
                    "the only import option is merge",
                )
                return None
        return merge

    def values(self, node: YNode | None) -> Obj | None:
        if node is None or (isinstance(node, YScalar) and node.value is None):
            return None
        if not isinstance(node, YMap):
            self.error(
                f"`values` must be a mapping of names to values, not {_kind(node)}",
                node,
                "values",
                "write values: followed by indented name: value lines",
            )
            return None
        if len(node.pairs) == 1:
            k, _ = node.pairs[0]
            if isinstance(k, YScalar) and isinstance(k.value, str) and self.is_builtin(k.value):
                self.error(
                    f'builtin function call "{k.value}" not allowed at the top level',
                    k,
                    format_path((k.value,), "values"),
                    "give the value a name: values: {NAME: {" + k.value + ": ...}}",
                )
                return Obj(node.line, node.col, (), {}, {})
        entries: dict[str, Node] = {}
        key_pos: dict[str, tuple[int | None, int | None]] = {}
        for k, v in node.pairs:
            key = self.key_of(k, ())
            if key is None:
                self.expr(v, ("?",), 1)
                continue
            if key in _RESERVED_VALUE_KEYS:
                self.error(
                    f'"{key}" is a reserved key',
                    k,
                    self.vpath((key,)),
                    f"rename it; ${{{key}...}} refers to Strongroom's own {key}",
                )
                continue
            if key in entries:
                self.error(f'duplicate key "{key}"', k, self.vpath((key,)), "remove one of them; the first one is used")
                self.expr(v, (key,), 1)
                continue
            key_pos[key] = (k.line, k.col)
            entries[key] = self.expr(v, (key,), 1)
        return Obj(node.line, node.col, (), entries, key_pos)


def _number(root: Node | None) -> int:
    """Assign memo indexes in the same order ``decode_node`` does (children before parents)."""
    if root is None:
        return 0
    counter = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            node.idx = counter
            counter += 1
            continue
        stack.append((node, True))
        children: list[Node] = []
        if isinstance(node, Arr):
            children = list(node.items)
        elif isinstance(node, Obj):
            children = list(node.entries.values())
        elif isinstance(node, Call):
            children = [a for a in node.args if a is not None]
        for child in reversed(children):
            stack.append((child, False))
    return counter


def _line_col(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def compile_definition(text: str, env: str, *, limits: Limits = DEFAULT_LIMITS) -> Compiled:
    """Parse and check a definition. Never raises for the user's mistakes: see ``Compiled.diagnostics``."""
    c = _Compiler(env, limits)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_definition_bytes:
        c.error(
            f"the definition is larger than the {limits.max_definition_bytes // 1024} KiB limit",
            (1, 1),
            "",
            "split it into several environments joined by imports",
        )
        return Compiled(env, (), None, None, tuple(c.diags), 0)
    if "\x00" in text:
        c.error("the definition contains a NUL character", _line_col(text, text.index("\x00")), "", "remove it")
        return Compiled(env, (), None, None, tuple(c.diags), 0)
    deep_at = flow_nesting_exceeds(text, 2 * limits.max_depth)
    if deep_at >= 0:
        c.error(
            f"values are nested more than {limits.max_depth} levels deep",
            _line_col(text, deep_at),
            "",
            "flatten the definition; deeper nesting is not supported",
        )
        return Compiled(env, (), None, None, tuple(c.diags), 0)
    root, ydiags = read_yaml(text)
    for yline, ycol, message, hint in ydiags:
        c.error(message, (yline, ycol), "", hint)
    try:
        imports, values, description, rotation = c.document(root)
    except RecursionError:  # defensive: depth limits should make this unreachable
        c.error("the definition is nested too deeply to compile", None, "", "flatten the definition")
        return Compiled(env, (), None, None, tuple(c.diags), 0)
    return Compiled(env, imports, values, description, tuple(c.diags), _number(values), rotation)

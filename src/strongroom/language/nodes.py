"""The compiled form of a definition: a tree of small nodes, and its JSON encoding.

Templates are parsed into ``Sym``/``Interp`` nodes at compile time, built-in calls
into ``Secret``/``Call`` nodes, so evaluation never re-parses text. Every node knows
its line, column and document path (below ``values``), and carries an index used
by the evaluator for per-evaluation memo tables. Decoding (``decode_node``) is plain
``json`` plus one walk: no YAML parser.
"""

from __future__ import annotations

__all__ = [
    "Arr",
    "Bad",
    "Call",
    "Interp",
    "Lit",
    "Node",
    "Obj",
    "Secret",
    "Sym",
    "decode_node",
    "encode_node",
]

from typing import Any

from strongroom.language.interpolation import Access, Part
from strongroom.language.paths import Path

LIT, SYM, INTERP, ARR, OBJ, BAD, SECRET, CALL = range(8)


class Node:
    """Base of compiled nodes. ``path`` is relative to ``values``."""

    __slots__ = ("col", "idx", "line", "path")
    kind = -1

    def __init__(self, line: int | None, col: int | None, path: Path) -> None:
        self.line = line
        self.col = col
        self.path = path
        self.idx = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}@{self.line}:{self.col}"


class Lit(Node):
    """A literal scalar: ``None``, bool, int, float or str."""

    __slots__ = ("value",)
    kind = LIT

    def __init__(self, line: int | None, col: int | None, path: Path, value: Any) -> None:
        super().__init__(line, col, path)
        self.value = value

    def __repr__(self) -> str:
        return f"Lit@{self.line}:{self.col}"


class Sym(Node):
    """A string that is exactly one reference, ``${a.b}``: keeps the referenced value's type."""

    __slots__ = ("access", "qoff")
    kind = SYM

    def __init__(self, line: int | None, col: int | None, path: Path, access: Access, qoff: int) -> None:
        super().__init__(line, col, path)
        self.access = access
        self.qoff = qoff


class Interp(Node):
    """A string mixing text and references: evaluates to a string."""

    __slots__ = ("parts", "qoff")
    kind = INTERP

    def __init__(self, line: int | None, col: int | None, path: Path, parts: tuple[Part, ...], qoff: int) -> None:
        super().__init__(line, col, path)
        self.parts = parts
        self.qoff = qoff


class Arr(Node):
    __slots__ = ("items",)
    kind = ARR

    def __init__(self, line: int | None, col: int | None, path: Path, items: tuple[Node, ...]) -> None:
        super().__init__(line, col, path)
        self.items = items


class Obj(Node):
    """An object literal. ``entries`` keeps definition order; ``key_pos`` the position of each key."""

    __slots__ = ("entries", "key_pos", "order")
    kind = OBJ

    def __init__(
        self,
        line: int | None,
        col: int | None,
        path: Path,
        entries: dict[str, Node],
        key_pos: dict[str, tuple[int | None, int | None]],
    ) -> None:
        super().__init__(line, col, path)
        self.entries = entries
        self.key_pos = key_pos
        #: Evaluation order: sorted keys, as ESC does, so cycle diagnostics land predictably.
        self.order = tuple(sorted(entries))


class Bad(Node):
    """What a malformed expression compiles to: evaluates to an unknown value, silently."""

    __slots__ = ()
    kind = BAD


class Secret(Node):
    """``fn::secret``: a plaintext literal, or a ciphertext token as stored."""

    __slots__ = ("ciphertext", "plaintext")
    kind = SECRET

    def __init__(
        self, line: int | None, col: int | None, path: Path, plaintext: str | None, ciphertext: str | None
    ) -> None:
        super().__init__(line, col, path)
        self.plaintext = plaintext
        self.ciphertext = ciphertext

    def __repr__(self) -> str:
        return f"Secret@{self.line}:{self.col}"


class Call(Node):
    """Any other built-in call. ``fn`` is the canonical name (``fn::open``), ``key`` as written."""

    __slots__ = ("args", "fn", "key", "provider", "rels")
    kind = CALL

    def __init__(
        self,
        line: int | None,
        col: int | None,
        path: Path,
        fn: str,
        key: str,
        provider: str | None,
        args: tuple[Node | None, ...],
        rels: tuple[Path, ...],
    ) -> None:
        super().__init__(line, col, path)
        self.fn = fn
        self.key = key
        self.provider = provider
        self.args = args
        #: Each argument's path relative to ``path + (key,)``.
        self.rels = rels


def encode_node(node: Node) -> list[Any]:
    """The JSON-able form of a node (recursion is bounded by the compiler's depth limit)."""
    head: list[Any] = [node.kind, node.line, node.col]
    if isinstance(node, Lit):
        head.append(node.value)
    elif isinstance(node, Sym):
        head += [list(node.access.keys), list(node.access.offsets), node.qoff]
    elif isinstance(node, Interp):
        head.append([[t, None if a is None else [list(a.keys), list(a.offsets)]] for t, a in node.parts])
        head.append(node.qoff)
    elif isinstance(node, Arr):
        head.append([encode_node(item) for item in node.items])
    elif isinstance(node, Obj):
        head.append([[k, *node.key_pos[k], encode_node(v)] for k, v in node.entries.items()])
    elif isinstance(node, Secret):
        head += [node.plaintext, node.ciphertext]
    elif isinstance(node, Call):
        head += [
            node.fn,
            node.key,
            node.provider,
            [
                [list(rel), None if arg is None else encode_node(arg)]
                for rel, arg in zip(node.rels, node.args, strict=True)
            ],
        ]
    return head


def decode_node(data: list[Any], path: Path, counter: list[int]) -> Node:
    """Rebuild a node (and its paths and memo indexes) from ``encode_node``'s output."""
    kind, line, col = data[0], data[1], data[2]
    node: Node
    if kind == LIT:
        node = Lit(line, col, path, data[3])
    elif kind == SYM:
        node = Sym(line, col, path, Access(tuple(data[3]), tuple(data[4])), data[5])
    elif kind == INTERP:
        parts: tuple[Part, ...] = tuple(
            (t, None if a is None else Access(tuple(a[0]), tuple(a[1]))) for t, a in data[3]
        )
        node = Interp(line, col, path, parts, data[4])
    elif kind == ARR:
        node = Arr(line, col, path, tuple(decode_node(item, (*path, i), counter) for i, item in enumerate(data[3])))
    elif kind == OBJ:
        entries: dict[str, Node] = {}
        key_pos: dict[str, tuple[int | None, int | None]] = {}
        for key, kline, kcol, child in data[3]:
            entries[key] = decode_node(child, (*path, key), counter)
            key_pos[key] = (kline, kcol)
        node = Obj(line, col, path, entries, key_pos)
    elif kind == SECRET:
        node = Secret(line, col, path, data[3], data[4])
    elif kind == CALL:
        fn, key, provider = data[3], data[4], data[5]
        rels: list[Path] = []
        args: list[Node | None] = []
        for rel, arg in data[6]:
            rel_path: Path = tuple(rel)
            rels.append(rel_path)
            args.append(None if arg is None else decode_node(arg, (*path, key, *rel_path), counter))
        node = Call(line, col, path, fn, key, provider, tuple(args), tuple(rels))
    elif kind == BAD:
        node = Bad(line, col, path)
    else:
        raise ValueError(f"unknown node kind {kind!r} in a compiled definition")
    node.idx = counter[0]
    counter[0] += 1
    return node

"""Per-evaluation state shared by the evaluator and the built-in functions."""

from __future__ import annotations

__all__ = ["BUSY", "DONE", "NEW", "Decrypter", "EnvState", "Gen", "Loader", "Request", "where"]

from collections.abc import Callable, Generator
from typing import Any

from strongroom.language.compiler import Compiled
from strongroom.language.nodes import Interp, Node, Obj, Sym
from strongroom.language.values import EvalValue, container

NEW, BUSY, DONE = 0, 1, 2

Loader = Callable[[str], tuple[str, Compiled]]
Decrypter = Callable[[str, str], str]
#: What a node's generator asks the trampoline for: evaluate this node, over this base.
Request = tuple[Node, EvalValue | None]
Gen = Generator[Request, EvalValue, EvalValue]


class EnvState:
    """One environment's evaluation: memo tables, merged imports, context."""

    __slots__ = (
        "base",
        "compiled",
        "context",
        "context_plain",
        "evaluating",
        "imports",
        "imports_value",
        "memo",
        "name",
        "root",
        "root_name",
        "state",
        "value",
    )

    def __init__(self, name: str, compiled: Compiled, root_name: str) -> None:
        self.name = name
        self.compiled = compiled
        self.root_name = root_name
        self.evaluating = True
        self.base: EvalValue | None = None
        self.imports: dict[str, EvalValue] = {}
        self.imports_value: EvalValue = container({}, False, None, None)
        self.context: EvalValue = container({}, False, None, None)
        self.context_plain: dict[str, Any] = {}
        count = compiled.node_count
        root = compiled.values
        if root is None:
            root = Obj(None, None, (), {}, {})
            root.idx = count
        self.root: Obj = root
        self.state = [NEW] * (count + 1)
        self.memo: list[EvalValue | None] = [None] * (count + 1)
        self.value: EvalValue | None = None


def where(node: Node, offset: int | None = None) -> tuple[int | None, int | None]:
    col = node.col
    if offset is not None and col is not None and isinstance(node, Sym | Interp) and node.qoff >= 0:
        col = col + node.qoff + offset
    return node.line, col

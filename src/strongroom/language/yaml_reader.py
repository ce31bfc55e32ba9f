"""YAML text to a small positioned tree, built iteratively from ruamel.yaml's parser events.

Building the tree ourselves (instead of ruamel's recursive composer and constructor)
keeps every node's line and column, keeps duplicate keys for the compiler to report,
expands aliases lazily (the compiler counts expanded nodes), and never recurses, so
deeply nested input cannot raise ``RecursionError``. Plain scalars resolve with the
YAML 1.2 core schema (``yes``/``no`` stay strings), as ESC does. ruamel.yaml is
imported inside ``read_yaml`` only: it costs ~20 ms at start-up.
"""

from __future__ import annotations

__all__ = ["YMap", "YNode", "YScalar", "YSeq", "read_yaml"]

import math
import re
from typing import Any

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUES = frozenset({"true", "True", "TRUE"})
_FALSES = frozenset({"false", "False", "FALSE"})
_INT = re.compile(r"[-+]?[0-9]+\Z")
_OCT = re.compile(r"0o[0-7]+\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")
_FLOW_CHARS = re.compile(r"[\[\]{}\"'#]")
_CORE = "tag:yaml.org,2002:"
#: Longer numeric text stays a string (Python refuses to convert ints of more than 4300 digits).
_MAX_NUMBER_TEXT = 1000
_SCALAR_TAGS = frozenset({_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp")})

Diag = tuple[int | None, int | None, str, str | None]


class YScalar:
    """A scalar: ``value`` resolved (str, int, float, bool or None), ``text`` as written."""

    __slots__ = ("col", "line", "qoff", "text", "value")

    def __init__(self, value: Any, text: str, line: int, col: int, qoff: int) -> None:
        self.value = value
        self.text = text
        self.line = line
        self.col = col
        #: 0 when text offsets map to columns from ``col`` (a plain one-line scalar), else -1.
        self.qoff = qoff


class YSeq:
    __slots__ = ("col", "items", "line")

    def __init__(self, line: int, col: int) -> None:
        self.items: list[YNode] = []
        self.line = line
        self.col = col


class YMap:
    __slots__ = ("col", "line", "pairs")

    def __init__(self, line: int, col: int) -> None:
        self.pairs: list[tuple[YNode, YNode]] = []
        self.line = line
        self.col = col


YNode = YScalar | YSeq | YMap


def _resolve_plain(text: str) -> Any:
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    if len(text) > _MAX_NUMBER_TEXT:
        return text  # a "number" of thousands of digits is kept as written
    if _INT.match(text):
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        value = float(text)
        return value if math.isfinite(value) else text
    return text  # includes .inf and .nan: JSON cannot hold them, so they stay strings


def _resolve_tagged(text: str, tag: str) -> tuple[Any, str | None]:
    """Apply an explicit core tag; return (value, problem)."""
    kind = tag[len(_CORE) :]
    if kind in ("str", "timestamp"):
        return text, None
    value = _resolve_plain(text)
    expected = {"int": int, "float": (int, float), "bool": bool, "null": type(None)}[kind]
    if isinstance(value, bool) and kind != "bool":
        return text, f"{text!r} is not a valid !!{kind}"
    if not isinstance(value, expected):  # type: ignore[arg-type]
        return text, f"{text!r} is not a valid !!{kind}"
    return (float(value) if kind == "float" else value), None


def flow_nesting_exceeds(text: str, limit: int) -> int:
    """A quick scan: where ``[``/``{`` first nest deeper than ``limit`` (outside quotes and comments), or -1.

    ruamel's scanner is quadratic in flow nesting depth, so absurd nesting is refused
    before parsing. Brackets inside plain scalars may be over-counted; callers pass a
    limit well above the real depth limit.
    """
    depth = 0
    pos, n = 0, len(text)
    while pos < n:
        m = _FLOW_CHARS.search(text, pos)
        if m is None:
            return -1
        i = m.start()
        c = text[i]
        prev = text[i - 1] if i > 0 else "\n"
        pos = i + 1
        if c in "[{":
            depth += 1
            if depth > limit:
                return i
        elif c in "]}":
            depth = max(0, depth - 1)
        elif c == "#":
            if prev in " \t\r\n":
                end = text.find("\n", pos)
                pos = n if end < 0 else end
        elif prev in " \t\r\n[{,:-?":
            end = _closing_quote(text, pos, c)
            pos = n if end < 0 else end + 1
    return -1


def _closing_quote(text: str, pos: int, quote: str) -> int:
    if quote == "'":
        return text.find("'", pos)
    while True:
        end = text.find('"', pos)
        if end < 0:
            return -1
        backslashes = 0
        k = end - 1
        while k >= pos and text[k] == "\\":
            backslashes += 1
            k -= 1
        if backslashes % 2 == 0:
            return end
        pos = end + 1


def read_yaml(text: str) -> tuple[YNode | None, list[Diag]]:
    """Parse one YAML document into a tree; problems are returned, never raised."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    from ruamel.yaml.events import (
        AliasEvent,
        DocumentStartEvent,
        MappingEndEvent,
        MappingStartEvent,
        ScalarEvent,
        SequenceEndEvent,
        SequenceStartEvent,
    )

    diags: list[Diag] = []
    root: YNode | None = None
    anchors: dict[str, YNode] = {}
    # Each frame: [node, anchor, pending key or None]
    stack: list[list[Any]] = []
    documents = 0

    def add(node: YNode) -> None:
        nonlocal root
        if not stack:
            root = node
            return
        frame = stack[-1]
        parent = frame[0]
        if isinstance(parent, YSeq):
            parent.items.append(node)
        elif frame[2] is None:
            frame[2] = node
        else:
            parent.pairs.append((frame[2], node))
            frame[2] = None

    def check_tag(tag: str | None, allowed: str, line: int, col: int) -> None:
        if tag is not None and tag != "!" and tag != allowed:
            diags.append((line, col, f"unsupported YAML tag {tag}", "remove the tag; Strongroom reads plain YAML"))

    try:
        for event in YAML(typ="safe", pure=True).parse(text):
            cls = type(event)
            if cls is ScalarEvent:
                mark = event.start_mark
                line, col = mark.line + 1, mark.column + 1
                raw = event.value
                tag = event.tag
                style = event.style
                if tag is not None and tag in _SCALAR_TAGS:
                    value, problem = _resolve_tagged(raw, tag)
                    if problem:
                        diags.append((line, col, problem, "remove the tag or fix the value"))
                elif style is None and (tag is None or tag == "!") and event.implicit[0]:
                    value = _resolve_plain(raw) if tag is None else raw
                else:
                    check_tag(tag, _CORE + "str", line, col)
                    value = raw if tag is None or tag == "!" or style is not None else _resolve_plain(raw)
                end = event.end_mark
                # Offsets inside a plain one-line scalar map to columns; elsewhere (as ESC does) a
                # position inside the text is reported at the scalar's start.
                same_line = end.line == mark.line and end.column - mark.column == len(raw)
                qoff = 0 if style is None and same_line else -1
                node: YNode = YScalar(value, raw, line, col, qoff)
                if event.anchor:
                    anchors[event.anchor] = node
                add(node)
            elif cls is MappingStartEvent or cls is SequenceStartEvent:
                mark = event.start_mark
                line, col = mark.line + 1, mark.column + 1
                if cls is MappingStartEvent:
                    check_tag(event.tag, _CORE + "map", line, col)
                    node = YMap(line, col)
                else:
                    check_tag(event.tag, _CORE + "seq", line, col)
                    node = YSeq(line, col)
                stack.append([node, event.anchor, None])
            elif cls is MappingEndEvent or cls is SequenceEndEvent:
                node, anchor, _pending = stack.pop()
                if anchor:
                    anchors[anchor] = node
                add(node)
            elif cls is AliasEvent:
                target = anchors.get(event.anchor)
                if target is None:
                    mark = event.start_mark
                    diags.append(
                        (mark.line + 1, mark.column + 1, f"unknown YAML alias *{event.anchor}", "define &anchor first")
                    )
                    target = YScalar(None, "", mark.line + 1, mark.column + 1, -1)
                add(target)
            elif cls is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    mark = event.start_mark
                    diags.append(
                        (
                            mark.line + 1,
                            mark.column + 1,
                            "a definition must be a single YAML document",
                            "remove the '---' and everything after it",
                        )
                    )
                    break
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = str(exc.problem or exc.context or "invalid YAML")
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        diags.append((line, col, f"malformed YAML: {problem}", "fix the YAML syntax at this position"))
        return None, diags
    except (YAMLError, RecursionError, Exception) as exc:  # the parse edge: nothing may escape
        diags.append((1, 1, f"malformed YAML ({type(exc).__name__})", "fix the YAML syntax"))
        return None, diags
    return root, diags

"""Evaluated values: ``EvalValue`` trees, and the conversions ESC defines on them.

An ``EvalValue`` is immutable by convention (imported values are shared between
environments). Containers hold ``dict[str, EvalValue]`` or ``list[EvalValue]``, and
cache their height, size and whether they contain secrets or unknowns, so the
evaluator can enforce limits and propagate secrecy in O(1). Every walker here recurses
at most ``height`` levels, which the evaluator bounds (``Limits.max_value_depth``).
"""

from __future__ import annotations

__all__ = [
    "Budget",
    "EvalValue",
    "LimitExceeded",
    "container",
    "from_plain",
    "go_json",
    "go_string",
    "kind_of",
    "plain",
    "render",
    "with_flags",
]

import json
import math
import re
from collections.abc import Callable
from typing import Any

from strongroom.language.nodes import Node
from strongroom.model import Secret

SECRET_TEXT = "[secret]"
#: Integers beyond this many bits (~1000 digits) are refused: Python cannot print ints of more than 4300 digits.
_MAX_INT_BITS = 3300
UNKNOWN_TEXT = "[unknown]"
_PLAIN_QUOTABLE = re.compile(r'[^"\\\x00-\x1f\x7f-\x9f\u00ad\u2028\u2029]*\Z')
_SURROGATES = re.compile("[\ud800-\udfff]")
_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


class LimitExceeded(Exception):
    """A value or string would exceed a ``Limits`` bound; the evaluator turns it into a diagnostic."""


class Budget:
    """Characters an evaluation may still produce, and the longest single string."""

    __slots__ = ("left", "max_string")

    def __init__(self, total: int, max_string: int) -> None:
        self.left = total
        self.max_string = max_string

    def spend(self, n: int) -> None:
        if n > self.max_string:
            raise LimitExceeded(f"a string would be longer than {self.max_string} characters")
        self.left -= n
        if self.left < 0:
            raise LimitExceeded("the evaluation produced too much text")


class EvalValue:
    """One evaluated value and where it was defined.

    ``value`` is ``None``/bool/int/float/str, or a ``dict``/``list`` of ``EvalValue``.
    ``unknown`` values (errors, masked secrets, unopened providers) have ``value`` None.
    ``secret`` values never show in ``repr``.
    """

    __slots__ = (
        "env",
        "final",
        "has_secret",
        "has_unknown",
        "height",
        "node",
        "own",
        "partial",
        "secret",
        "size",
        "stringy",
        "unknown",
        "value",
    )

    def __init__(self, value: Any, secret: bool, unknown: bool, env: str | None, node: Node | None) -> None:
        self.value = value
        self.secret = secret
        self.unknown = unknown
        self.env = env
        self.node = node
        self.final = False
        #: For an object merged over a base: its own entries (ESC's fn::toString shows only these).
        self.own: dict[str, EvalValue] | None = None
        #: An object merged over an unknown base: a missing key is unknown, not an error.
        self.partial = False
        #: An unknown known to be a string (a masked secret, a string function's result).
        self.stringy = False
        self.has_secret = secret
        self.has_unknown = unknown
        self.height = 0
        self.size = 1

    @property
    def line(self) -> int | None:
        return None if self.node is None else self.node.line

    @property
    def column(self) -> int | None:
        return None if self.node is None else self.node.col

    @property
    def where(self) -> str:
        """``env:line:column`` for "defined at ..." messages."""
        out = self.env or "<context>"
        if self.line is not None:
            out += f":{self.line}"
            if self.column is not None:
                out += f":{self.column}"
        return out

    def __repr__(self) -> str:
        if self.secret:
            shown = SECRET_TEXT
        elif self.unknown:
            shown = UNKNOWN_TEXT
        elif isinstance(self.value, dict):
            shown = "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.value.items()) + "}"
        else:
            shown = repr(self.value)
        return f"EvalValue({shown} @ {self.where})"

    def get(self, key: str | int) -> EvalValue | None:
        """A child by key or index, or ``None``."""
        v = self.value
        child: EvalValue | None = None
        if isinstance(v, dict) and isinstance(key, str):
            child = v.get(key)
        elif isinstance(v, list) and isinstance(key, int) and 0 <= key < len(v):
            child = v[key]
        return child


def container(
    value: dict[str, EvalValue] | list[EvalValue], secret: bool, env: str | None, node: Node | None
) -> EvalValue:
    """A list or object value, with its cached height, size, secrecy and unknown-ness."""
    out = EvalValue(value, secret, False, env, node)
    height = 0
    size = 1
    has_secret = secret
    has_unknown = False
    for child in value.values() if isinstance(value, dict) else value:
        if child.height >= height:
            height = child.height + 1
        size += child.size
        if child.has_secret:
            has_secret = True
        if child.has_unknown:
            has_unknown = True
    out.height = max(height, 1)
    out.size = size
    out.has_secret = has_secret
    out.has_unknown = has_unknown
    return out


def with_flags(
    v: EvalValue, *, secret: bool | None = None, env: str | None = None, node: Node | None = None
) -> EvalValue:
    """A shallow copy with other flags or provenance (``final`` is not copied)."""
    out = EvalValue(
        v.value,
        v.secret if secret is None else secret,
        v.unknown,
        v.env if env is None else env,
        v.node if node is None else node,
    )
    out.partial = v.partial
    out.stringy = v.stringy
    out.own = v.own
    out.has_secret = v.has_secret or out.secret
    out.has_unknown = v.has_unknown
    out.height = v.height
    out.size = v.size
    return out


def kind_of(v: EvalValue) -> str:
    """ESC's type name of a known value."""
    value = v.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number_text(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return json.dumps(value)


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote``."""
    if _PLAIN_QUOTABLE.match(s) and s.isprintable():
        return f'"{s}"'
    out = ['"']
    for ch in s:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        else:
            o = ord(ch)
            if o < 0x20 or o == 0x7F:
                out.append(f"\\x{o:02x}")
            elif o < 0x10000:
                out.append(f"\\u{o:04x}")
            else:
                out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def go_string(v: EvalValue, budget: Budget) -> tuple[str, bool, bool]:
    """ESC's string form of a value (interpolation, ``fn::toString``): (text, unknown, secret)."""
    if v.unknown:
        return UNKNOWN_TEXT, True, v.secret
    value = v.value
    unknown, secret = False, v.secret
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = _number_text(value)
    elif isinstance(value, str):
        return value, False, secret
    elif isinstance(value, list):
        items: list[str] = []
        total = 0
        for child in value:
            s, u, sec = go_string(child, budget)
            q = go_quote(s)
            total += len(q) + 1
            if total > budget.max_string:
                raise LimitExceeded(f"a string would be longer than {budget.max_string} characters")
            items.append(q)
            unknown, secret = unknown or u, secret or sec
        text = ",".join(items)
    else:
        own = v.own if v.own is not None else value
        pairs: list[str] = []
        total = 0
        for key in sorted(own):
            s, u, sec = go_string(own[key], budget)
            pair = f"{go_quote(key)}={go_quote(s)}"
            total += len(pair) + 1
            if total > budget.max_string:
                raise LimitExceeded(f"a string would be longer than {budget.max_string} characters")
            pairs.append(pair)
            unknown, secret = unknown or u, secret or sec
        text = ",".join(pairs)
    return text, unknown, secret


def _json_string(s: str) -> str:
    out = json.dumps(s, ensure_ascii=False)
    if "<" in out or ">" in out or "&" in out or "\u2028" in out or "\u2029" in out:
        out = (
            out.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    if _SURROGATES.search(out):
        out = _SURROGATES.sub("\ufffd", out)
    return out


def go_json(v: EvalValue, max_length: int) -> str:
    """Go's ``json.Marshal`` of a known value (sorted keys, compact, HTML-safe), plaintext secrets included."""
    pieces: list[str] = []
    length = 0

    def put(s: str) -> None:
        nonlocal length
        length += len(s)
        if length > max_length:
            raise LimitExceeded(f"a string would be longer than {max_length} characters")
        pieces.append(s)

    def walk(x: EvalValue) -> None:
        value = x.value
        if value is None:
            put("null")
        elif value is True:
            put("true")
        elif value is False:
            put("false")
        elif isinstance(value, int | float):
            put(_number_text(value))
        elif isinstance(value, str):
            put(_json_string(value))
        elif isinstance(value, list):
            put("[")
            for i, child in enumerate(value):
                if i:
                    put(",")
                walk(child)
            put("]")
        else:
            put("{")
            for i, key in enumerate(sorted(value)):
                if i:
                    put(",")
                put(_json_string(key))
                put(":")
                walk(value[key])
            put("}")

    walk(v)
    return "".join(pieces)


def plain(v: EvalValue) -> Any:
    """The value as plain Python data, secrets in plaintext (unknowns as ``None``)."""
    value = v.value
    if isinstance(value, dict):
        return {k: plain(c) for k, c in value.items()}
    if isinstance(value, list):
        return [plain(c) for c in value]
    return value


def render(v: EvalValue, reveal: bool, masked: bool, secret_factory: Callable[[EvalValue], Any] | None = None) -> Any:
    """JSON-able data: secrets as ``"[secret]"`` unless ``reveal``, unknowns as ``"[unknown]"``.

    An unknown secret (a masked one, or one that could not be decrypted) shows
    ``"[secret]"`` when hidden; when revealed it shows ``"[unknown]"``, or ``"[secret]"``
    in a masked evaluation, whose plaintexts were never available.
    ``secret_factory``, when given, replaces each secret (known or not) instead.
    """
    if v.secret:
        if secret_factory is not None:
            return secret_factory(v)
        if not reveal:
            return SECRET_TEXT
        if v.unknown:
            return SECRET_TEXT if masked else UNKNOWN_TEXT
    if v.unknown:
        return UNKNOWN_TEXT
    value = v.value
    if isinstance(value, dict):
        return {k: render(c, reveal, masked, secret_factory) for k, c in value.items()}
    if isinstance(value, list):
        return [render(c, reveal, masked, secret_factory) for c in value]
    return value


class _Counter:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


def from_plain(
    data: Any,
    secret: bool,
    env: str | None,
    node: Node | None,
    *,
    max_depth: int,
    max_nodes: int,
) -> EvalValue:
    """Plain data (provider outputs, parsed JSON, the execution context) as an ``EvalValue``.

    ``model.Secret`` leaves become secrets (masked when not revealed); ``secret``
    marks every element. ``TypeError`` for data that is not JSON-like; ``LimitExceeded``
    for data too deep or too large.
    """
    counter = _Counter(max_nodes)

    def conv(x: Any, depth: int) -> EvalValue:
        counter.left -= 1
        if counter.left < 0:
            raise LimitExceeded(f"the value has more than {max_nodes} elements")
        if depth > max_depth:
            raise LimitExceeded(f"the value is nested more than {max_depth} levels deep")
        if x is None or isinstance(x, bool | str):
            return EvalValue(x, secret, False, env, node)
        if isinstance(x, int):
            if x.bit_length() > _MAX_INT_BITS:
                raise TypeError("a number is too large")
            return EvalValue(x, secret, False, env, node)
        if isinstance(x, float):
            if not math.isfinite(x):
                raise TypeError("numbers must be finite")
            return EvalValue(x, secret, False, env, node)
        if isinstance(x, Secret):
            if x.revealed:
                return EvalValue(x.reveal(), True, False, env, node)
            masked = EvalValue(None, True, True, env, node)
            masked.stringy = True
            return masked
        if isinstance(x, EvalValue):
            return x
        if isinstance(x, dict):
            out: dict[str, EvalValue] = {}
            for k, child in x.items():
                if not isinstance(k, str):
                    raise TypeError("object keys must be strings")
                out[k] = conv(child, depth + 1)
            return container(out, secret, env, node)
        if isinstance(x, list | tuple):
            return container([conv(child, depth + 1) for child in x], secret, env, node)
        raise TypeError(f"unsupported value of type {type(x).__name__}")

    return conv(data, 0)

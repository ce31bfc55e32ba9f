"""``${...}`` templates: parsed once, at compile time, into text parts and property accesses.

The grammar follows Pulumi ESC: ``${a.b}``, ``${a[0]}``, ``${a["key.with:colons"]}``,
``${["root key"].x}``; ``$$`` is a literal ``$``. Parsing never fails: a malformed
access is reported (offset, message) and recovered from, and what was parsed is
still evaluated, so each mistake is reported once, where it is.
"""

from __future__ import annotations

__all__ = ["Access", "Part", "format_access", "parse_template"]

import json
import re
from typing import NamedTuple

_INDEX = re.compile(r"[+-]?[0-9]+\Z")
_MAX_INDEX = 2**63 - 1
_NAME_END = frozenset(".[}")


class Access(NamedTuple):
    """A property access: its keys (``str``) and indexes (``int``), and where each starts in the string."""

    keys: tuple[str | int, ...]
    offsets: tuple[int, ...]


#: A literal text followed by an optional access (``None`` for trailing text).
Part = tuple[str, Access | None]


def format_access(keys: tuple[str | int, ...]) -> str:
    """Render keys the way a reference is written (``a.b[0]["c.d"]``)."""
    out = ""
    for key in keys:
        if isinstance(key, int):
            out += f"[{key}]"
        elif key and all(c.isalnum() or c in "_$" for c in key) and not key[0].isdigit():
            out += f".{key}" if out else key
        else:
            out += f"[{json.dumps(key, ensure_ascii=False)}]"
    return out


class _AccessParser:
    """Parses one access starting just after ``${``; see ``parse_template``."""

    def __init__(self, text: str, pos: int, diags: list[tuple[int, str]]) -> None:
        self.text = text
        self.pos = pos
        self.diags = diags
        self.keys: list[str | int] = []
        self.offsets: list[int] = []

    def error(self, at: int, message: str) -> None:
        self.diags.append((at, message))

    def finish(self, start: int) -> Access:
        if not self.keys:
            self.keys.append("")
            self.offsets.append(start)
        return Access(tuple(self.keys), tuple(self.offsets))

    def parse(self) -> Access:
        text, n = self.text, len(self.text)
        while True:
            if self.pos >= n:
                self.error(self.pos, "missing closing brace '}' in interpolation")
                return self.finish(self.pos)
            c = text[self.pos]
            if c == "}":
                self.pos += 1
                return self.finish(self.pos - 1)
            start = self.pos
            if c == ".":
                self.pos += 1
                self.append(self.parse_name(start), start)
            elif c == "[":
                self.pos += 1
                self.append(self.parse_subscript(start), start)
            elif c.isspace():
                self.error(self.pos, "missing closing brace '}' in interpolation")
                return self.finish(self.pos)
            else:
                self.append(self.parse_name(start), start)

    def append(self, key: str | int, start: int) -> None:
        self.keys.append(key)
        self.offsets.append(start)

    def parse_name(self, start: int) -> str:
        text, n = self.text, len(self.text)
        begin = self.pos
        while self.pos < n and text[self.pos] not in _NAME_END and not text[self.pos].isspace():
            self.pos += 1
        if self.pos == begin:
            self.error(start, "property name must not be empty")
        return text[begin : self.pos]

    def parse_subscript(self, start: int) -> str | int:
        text, n = self.text, len(self.text)
        if self.pos >= n:
            self.error(start, "subscript is missing closing bracket ']'")
            return ""
        key: str | int
        if text[self.pos] == '"':
            self.pos += 1
            key = self.parse_string_subscript(start)
        else:
            key = self.parse_index_subscript(start)
        if self.pos >= n or text[self.pos] != "]":
            self.error(start, "subscript is missing closing bracket ']'")
        else:
            self.pos += 1
        return key

    def parse_string_subscript(self, start: int) -> str:
        text, n = self.text, len(self.text)
        chars: list[str] = []
        while True:
            if self.pos >= n:
                self.error(start + 1, "key subscript is missing closing quote '\"'")
                return "".join(chars)
            c = text[self.pos]
            self.pos += 1
            if c == '"':
                if not chars:
                    self.error(start + 1, "key subscript must not be empty")
                return "".join(chars)
            if c == "\\" and self.pos < n and text[self.pos] == '"':
                self.pos += 1
                c = '"'
            chars.append(c)

    def parse_index_subscript(self, start: int) -> str | int:
        text, n = self.text, len(self.text)
        begin = self.pos
        while self.pos < n:
            c = text[self.pos]
            if c == "]" or c in _NAME_END or c.isspace():
                break
            self.pos += 1
        raw = text[begin : self.pos]
        if not _INDEX.match(raw) or abs(int(raw)) > _MAX_INDEX:
            self.error(start + 1, "numeric subscript must be a positive base-10 integer")
            return raw
        if not self.keys:
            self.error(start, "the first accessor must be a property name or key subscript, not a numeric subscript")
        return int(raw)


def parse_template(text: str) -> tuple[list[Part], list[tuple[int, str]]]:
    """Split ``text`` into parts; return them with (offset, message) for each malformed access."""
    parts: list[Part] = []
    diags: list[tuple[int, str]] = []
    buf: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find("$", i)
        if j < 0:
            buf.append(text[i:])
            break
        buf.append(text[i:j])
        if text.startswith("$$", j):
            buf.append("$")
            i = j + 2
        elif text.startswith("${", j):
            parser = _AccessParser(text, j + 2, diags)
            access = parser.parse()
            parts.append(("".join(buf), access))
            buf = []
            i = parser.pos
        else:
            buf.append("$")
            i = j + 1
    tail = "".join(buf)
    if tail:
        parts.append((tail, None))
    return parts, diags

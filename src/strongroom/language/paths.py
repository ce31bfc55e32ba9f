"""Property paths: ``a.b``, ``pulumiConfig."namespace:token"``, ``a[0]`` and ``a["key.with:colons"]``."""

from __future__ import annotations

__all__ = ["Path", "format_path", "parse_path"]

import json
import re

from strongroom.errors import PathError

Path = tuple[str | int, ...]

_PLAIN_SEGMENT = re.compile(r"[^.\[\]\"]+")
_INDEX = re.compile(r"[0-9]+")
_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _error(text: str, pos: int, what: str) -> PathError:
    return PathError(
        f"invalid path {text!r} at character {pos + 1}: {what}",
        hint='write paths like a.b, a[0], pulumiConfig."namespace:token" or a["key.with.dots"]',
    )


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """Read a double-quoted key (JSON string syntax) at ``text[pos] == '"'``; return (key, next position)."""
    i = pos + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            try:
                return str(json.loads(text[pos : i + 1])), i + 1
            except ValueError:
                raise _error(
                    text, pos, 'invalid escape in the quoted key (use JSON escapes such as \\" or \\n)'
                ) from None
        i += 1
    raise _error(text, pos, "unterminated quoted key")


def parse_path(text: str) -> Path:
    """Parse a property path into its keys (``str``) and indexes (``int``)."""
    if text == "":
        raise _error(text, 0, "the path is empty")
    segments: list[str | int] = []
    i = 0
    expect_key = True
    while i < len(text):
        ch = text[i]
        if ch == "[":
            end = text.find("]", i)
            if i + 1 < len(text) and text[i + 1] == '"':
                key, j = _quoted(text, i + 1)
                if j >= len(text) or text[j] != "]":
                    raise _error(text, j, "expected ']' after the quoted key")
                segments.append(key)
                i = j + 1
            elif end == -1:
                raise _error(text, i, "unclosed '['")
            else:
                inner = text[i + 1 : end]
                if not _INDEX.fullmatch(inner):
                    raise _error(text, i, f"an index must be a non-negative number, not {inner!r}")
                segments.append(int(inner))
                i = end + 1
            expect_key = False
            continue
        if ch == ".":
            if expect_key:
                raise _error(text, i, "empty key")
            i += 1
            expect_key = True
            if i == len(text):
                raise _error(text, i - 1, "the path ends with '.'")
            continue
        if not expect_key:
            raise _error(text, i, "expected '.' or '[' between keys")
        if ch == '"':
            key, i = _quoted(text, i)
            segments.append(key)
        else:
            m = _PLAIN_SEGMENT.match(text, i)
            if m is None:
                raise _error(text, i, f"unexpected {ch!r}")
            segments.append(m.group())
            i = m.end()
        expect_key = False
    return tuple(segments)


def format_path(path: Path, root: str = "") -> str:
    """Render a path the way ``parse_path`` reads it back (``values.a["b.c"][0]``)."""
    out = root
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif _SIMPLE_KEY.fullmatch(seg):
            out += f".{seg}" if out else seg
        else:
            out += f"[{json.dumps(seg, ensure_ascii=False)}]"
    return out

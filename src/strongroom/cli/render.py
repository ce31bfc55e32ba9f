"""Rendering values for the terminal: YAML and JSON, secrets masked unless revealed.

The YAML here is only ever *written* (block style, strings quoted JSON-style when
a plain scalar would be read back as something else); every YAML *read* goes through
ruamel.yaml. A property test checks that ruamel reads this output back unchanged.
Writing it ourselves keeps ruamel (~20 ms to import) off ``env get``'s path.
"""

from __future__ import annotations

__all__ = ["MASK", "to_dotenv", "to_json", "to_shell", "to_string", "to_yaml", "unmask"]

import json
import re
from typing import Any

from strongroom.model import Secret

MASK = "[secret]"

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+=-]*(?:(?: |:)[A-Za-z0-9_./@+=-]+)*")
_AMBIGUOUS = re.compile(
    r"(?i:y|n|yes|no|true|false|on|off|null|~|\.inf|\.nan|[-+]?\.inf)"
    r"|[-+]?[0-9].*|[-+.].*"
)
# Characters YAML does not allow unescaped in a double-quoted scalar (or that read back oddly).
_UNSAFE_CHARS = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


class Sourced:
    """A leaf value with where it was defined (``env:line:column``), shown as a YAML comment."""

    __slots__ = ("value", "where")

    def __init__(self, value: Any, where: str) -> None:
        self.value = value
        self.where = where

    def __repr__(self) -> str:
        return f"Sourced({self.where})"


def with_sources(v: Any, reveal: bool, inherited: bool = False) -> Any:
    """An evaluated value (``language.EvalValue``) as plain data whose leaves are :class:`Sourced`."""
    secret = v.secret or inherited
    if isinstance(v.value, dict):
        return {k: with_sources(c, reveal, secret) for k, c in v.value.items()}
    if isinstance(v.value, list):
        return [with_sources(c, reveal, secret) for c in v.value]
    if secret:
        return Sourced(Secret(None if (v.unknown or not reveal) else _leaf_text(v.value)), v.where)
    return Sourced("[unknown]" if v.unknown else v.value, v.where)


def _leaf_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def unmask(value: Any, show_secrets: bool) -> Any:
    """Plain data: secrets become their plaintext (when revealed and asked for) or ``[secret]``."""
    if isinstance(value, Sourced):
        return unmask(value.value, show_secrets)
    if isinstance(value, Secret):
        return value.reveal() if show_secrets and value.revealed else MASK
    if isinstance(value, dict):
        return {k: unmask(v, show_secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [unmask(v, show_secrets) for v in value]
    return value


def to_json(value: Any, *, show_secrets: bool = False, indent: int | None = 2) -> str:
    return json.dumps(unmask(value, show_secrets), indent=indent, ensure_ascii=False)


def _quote(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    return _UNSAFE_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", out)


def _scalar(value: Any, show_secrets: bool) -> str:
    if isinstance(value, Secret):
        if show_secrets and value.revealed:
            return _string(value.reveal())
        return MASK  # display form, as `pulumi env get` prints it
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    return _string(str(value))


def _string(text: str) -> str:
    if _PLAIN.fullmatch(text) and not _AMBIGUOUS.fullmatch(text) and not text.endswith(":"):
        return text
    return _quote(text)


def _key(key: str) -> str:
    return _string(key)


def _emit(value: Any, indent: int, lines: list[str], show_secrets: bool) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            if (isinstance(v, dict) and v) or (isinstance(v, list) and v):
                lines.append(f"{pad}{_key(str(k))}:")
                _emit(v, indent + 2, lines, show_secrets)
            else:
                lines.append(f"{pad}{_key(str(k))}: {_inline(v, show_secrets)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                sub: list[str] = []
                _emit(item, indent + 2, sub, show_secrets)
                lines.append(f"{pad}- {sub[0][indent + 2 :]}")
                lines.extend(sub[1:])
            elif isinstance(item, list) and item:
                lines.append(f"{pad}-")
                _emit(item, indent + 2, lines, show_secrets)
            else:
                lines.append(f"{pad}- {_inline(item, show_secrets)}")
    else:
        lines.append(pad + _inline(value, show_secrets))


def _inline(value: Any, show_secrets: bool) -> str:
    if isinstance(value, Sourced):
        return f"{_inline(value.value, show_secrets)}  # {value.where}"
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value, show_secrets)


def to_yaml(value: Any, *, show_secrets: bool = False) -> str:
    """Block-style YAML for display. Masked secrets show as ``[secret]``."""
    if isinstance(value, dict | list) and not value:
        return _inline(value, show_secrets) + "\n"
    lines: list[str] = []
    _emit(value, 0, lines, show_secrets)
    return "\n".join(lines) + "\n"


_DOTENV_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _env_value(value: Any, show_secrets: bool) -> str:
    plain = unmask(value, show_secrets)
    if isinstance(plain, str):
        return plain
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if plain is None:
        return ""
    if isinstance(plain, int | float):
        return str(plain)
    return json.dumps(plain, ensure_ascii=False, separators=(",", ":"))


def to_dotenv(variables: dict[str, Any], *, show_secrets: bool = False) -> str:
    """``KEY="value"`` lines; backslashes, quotes and newlines are escaped as dotenv readers expect.

    A value with a ``$`` (and no newline, backslash or single quote) is single-quoted
    instead: python-dotenv and Docker Compose expand ``${...}`` inside double quotes but
    not inside single quotes.
    """
    lines = []
    for name, value in variables.items():
        raw = _env_value(value, show_secrets)
        if "$" in raw and not any(ch in raw for ch in "'\n\\"):
            lines.append(f"{name}='{raw}'")
            continue
        text = "".join(_DOTENV_ESCAPES.get(ch, ch) for ch in raw)
        lines.append(f'{name}="{text}"')
    return "".join(line + "\n" for line in lines)


def to_shell(variables: dict[str, Any], *, show_secrets: bool = False) -> str:
    """``export KEY='value'`` lines that a POSIX shell can ``eval``."""
    lines = []
    for name, value in variables.items():
        text = _env_value(value, show_secrets).replace("'", "'\\''")
        lines.append(f"export {name}='{text}'")
    return "".join(line + "\n" for line in lines)


def to_string(value: Any, *, show_secrets: bool = False) -> str:
    """A scalar as bare text (no quotes); objects and lists as compact JSON."""
    return _env_value(value, show_secrets) + "\n"

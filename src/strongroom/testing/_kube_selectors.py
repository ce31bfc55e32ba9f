"""Label and field selectors for the fake Kubernetes API server (:mod:`strongroom.testing.kube_api`).

Label selectors follow "Label selectors" in
https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors: equality-based
(``a=b``, ``a==b``, ``a!=b``) and set-based (``a in (x,y)``, ``a notin (x,y)``, ``a``, ``!a``)
requirements, comma-separated and ANDed, plus the ``a>1`` / ``a<1`` numeric comparisons the server also
accepts. As documented, ``!=`` and ``notin`` match objects that do not have the label at all.

Field selectors follow https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/:
``=``, ``==`` and ``!=`` on the fields each resource supports, with backslash escapes in values.
"""

from __future__ import annotations

__all__ = ["FieldSelector", "LabelSelector", "SelectorError"]

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from strongroom.testing._kube_validation import is_qualified_name, is_valid_label_value


class SelectorError(ValueError):
    """A selector that does not parse; the server answers 400 ``BadRequest`` with this message."""


@dataclass(frozen=True)
class _Requirement:
    key: str
    operator: str  # exists, !, =, !=, in, notin, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        if self.operator in ("!=", "notin"):
            return not present or value not in self.values
        # gt / lt: both sides must be integers
        if not present or value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.operator == "gt" else number < bound


_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_CMP_RE = re.compile(r"^(?P<key>[^=!<>\s]+)\s*(?P<op>==|=|!=|>|<)\s*(?P<value>.*)$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unable to parse requirement: unbalanced ')' in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise SelectorError(f"unable to parse requirement: unbalanced '(' in {text!r}")
    parts.append("".join(current))
    return parts


def _check_key(key: str) -> None:
    problems = is_qualified_name(key)
    if problems:
        raise SelectorError(f'unable to parse requirement: key: Invalid value: "{key}": {"; ".join(problems)}')


def _check_value(key: str, value: str) -> None:
    problems = is_valid_label_value(value)
    if problems:
        raise SelectorError(
            f'unable to parse requirement: values[0][{key}]: Invalid value: "{value}": {"; ".join(problems)}'
        )


def _parse_requirement(text: str) -> _Requirement:
    text = text.strip()
    if not text:
        raise SelectorError("found '', expected: !, identifier, or 'end of string'")
    if text.startswith("!"):
        key = text[1:].strip()
        _check_key(key)
        return _Requirement(key, "!")
    match = _SET_RE.match(text)
    if match:
        key = match["key"]
        _check_key(key)
        values = tuple(value.strip() for value in match["values"].split(",")) if match["values"].strip() else ()
        if not values:
            raise SelectorError(
                f"unable to parse requirement: for 'in', 'notin' operators, values set can't be empty ({text!r})"
            )
        for value in values:
            _check_value(key, value)
        return _Requirement(key, match["op"], values)
    match = _CMP_RE.match(text)
    if match:
        key, operator, value = match["key"], match["op"], match["value"].strip()
        _check_key(key)
        if operator in (">", "<"):
            try:
                int(value)
            except ValueError:
                raise SelectorError(
                    f"unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer ({text!r})"
                ) from None
            return _Requirement(key, "gt" if operator == ">" else "lt", (value,))
        _check_value(key, value)
        return _Requirement(key, "!=" if operator == "!=" else "=", (value,))
    if re.search(r"\s", text):
        raise SelectorError(
            f"unable to parse requirement: found '{text.split()[-1]}', expected: in, notin, =, ==, !=, gt, lt"
        )
    _check_key(text)
    return _Requirement(text, "exists")


@dataclass(frozen=True)
class LabelSelector:
    """A parsed ``labelSelector`` query parameter; the empty selector matches everything."""

    requirements: tuple[_Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse ``text``; raises :class:`SelectorError` when it is not a valid selector."""
        if text is None or not text.strip():
            return cls()
        return cls(tuple(_parse_requirement(part) for part in _split_top_level(text)))

    @classmethod
    def from_label_selector_object(cls, selector: Mapping[str, object]) -> LabelSelector:
        """A ``metav1.LabelSelector`` (``matchLabels`` / ``matchExpressions``) as a selector."""
        requirements: list[_Requirement] = []
        match_labels = selector.get("matchLabels") or {}
        if isinstance(match_labels, Mapping):
            requirements.extend(_Requirement(str(k), "=", (str(v),)) for k, v in match_labels.items())
        expressions = selector.get("matchExpressions") or []
        if isinstance(expressions, list):
            operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
            for expression in expressions:
                if isinstance(expression, Mapping) and expression.get("operator") in operators:
                    values = expression.get("values") or []
                    requirements.append(
                        _Requirement(
                            str(expression.get("key", "")),
                            operators[str(expression["operator"])],
                            tuple(str(v) for v in values) if isinstance(values, list) else (),
                        )
                    )
        return cls(tuple(requirements))

    @property
    def empty(self) -> bool:
        """Whether the selector has no requirements (matches everything)."""
        return not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with ``labels`` is selected."""
        labels = labels or {}
        return all(requirement.matches(labels) for requirement in self.requirements)


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            if nxt not in ("\\", ",", "="):
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{nxt}")
            out.append(nxt)
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed ``fieldSelector`` query parameter: ``(field, operator, value)`` triples, ANDed."""

    requirements: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        """Parse ``text``; raises :class:`SelectorError` when it is not a valid selector."""
        if text is None or not text.strip():
            return cls()
        requirements: list[tuple[str, str, str]] = []
        for part in _split_unescaped(text, ","):
            match = re.match(r"^(?P<field>[^=!]+?)(?P<op>!=|==|=)(?P<value>.*)$", part.strip())
            if not match:
                raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
            operator = "!=" if match["op"] == "!=" else "="
            requirements.append((match["field"].strip(), operator, _unescape(match["value"])))
        return cls(tuple(requirements))

    @property
    def empty(self) -> bool:
        """Whether the selector has no requirements (matches everything)."""
        return not self.requirements

    def fields(self) -> Iterable[str]:
        """The field names the selector refers to."""
        return (name for name, _, _ in self.requirements)

    def matches(self, fields: Mapping[str, str]) -> bool:
        """Whether an object whose selectable fields are ``fields`` is selected."""
        for name, operator, value in self.requirements:
            actual = fields.get(name, "")
            if (actual == value) != (operator == "="):
                return False
        return True

"""An environment's definition as a YAML document: parse, check, edit by path, encrypt secret leaves.

Edits are round-trip: comments, key order and quoting of untouched parts survive.
Reads go through the language's compiled cache instead (see service.py).
Secret leaves are ``fn::secret: PLAINTEXT`` while a person writes them and
``fn::secret: {ciphertext: TOKEN}`` once stored.
"""

from __future__ import annotations

__all__ = [
    "SECRET_FN",
    "Document",
    "is_secret_node",
    "parse_definition",
]

import io
import re
from collections.abc import Callable, Iterator
from typing import Any

from strongroom.errors import DefinitionError, Diagnostic, PathError, TooLargeError
from strongroom.language.paths import Path, format_path
from strongroom.model import MAX_DEFINITION_BYTES

SECRET_FN = "fn::secret"

#: Upper bound on values after YAML aliases are expanded (guards against alias bombs).
MAX_NODES = 200_000


def is_secret_node(node: object) -> bool:
    """True for ``{fn::secret: ...}``, in either plaintext or ciphertext form."""
    return isinstance(node, dict) and len(node) == 1 and SECRET_FN in node


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _position(node: Any, key: object) -> tuple[int | None, int | None]:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None, None
    try:
        if isinstance(key, int):
            line, col = lc.item(key)
        else:
            line, col = lc.key(key)
    except (KeyError, IndexError, TypeError, AttributeError):
        return None, None
    return int(line) + 1, int(col) + 1


class Document:
    """A definition being read or edited. Mutations keep the YAML's formatting."""

    def __init__(self, root: Any, env: str) -> None:
        self._root = root
        self._env = env

    def __repr__(self) -> str:
        return f"Document(env={self._env!r})"

    @property
    def root(self) -> Any:
        return self._root

    # -- reading ------------------------------------------------------------------------------

    def to_plain(self) -> Any:
        """The document as plain JSON-able data (dicts, lists, scalars)."""
        counter = [0]

        def conv(node: Any) -> Any:
            counter[0] += 1
            if counter[0] > MAX_NODES:
                raise DefinitionError(
                    f"the definition of {self._env} expands to more than {MAX_NODES} values",
                    hint="remove YAML aliases that repeat large parts, or split the environment",
                )
            if isinstance(node, dict):
                return {str(k): conv(v) for k, v in node.items()}
            if isinstance(node, list):
                return [conv(v) for v in node]
            return _scalar(node)

        return conv(self._root) if self._root is not None else {}

    def dump(self) -> str:
        if self._root is None or (isinstance(self._root, dict) and not self._root):
            return "{}\n" if self._root is not None else ""
        buf = io.StringIO()
        _yaml().dump(self._root, buf)
        return buf.getvalue()

    # -- editing ------------------------------------------------------------------------------

    def _values(self, create: bool) -> Any:
        from ruamel.yaml.comments import CommentedMap

        if self._root is None:
            if not create:
                return None
            self._root = CommentedMap()
        values = self._root.get("values")
        if values is None and create:
            values = CommentedMap()
            self._root["values"] = values
        return values

    def _walk_to_parent(self, path: Path, create: bool) -> tuple[Any, str | int]:
        from ruamel.yaml.comments import CommentedMap

        node = self._values(create)
        where: list[str | int] = []
        for seg in path[:-1]:
            node = self._step(node, seg, where, create, CommentedMap)
            where.append(seg)
        if node is None:
            raise PathError(f"{format_path(path, 'values')} does not exist in {self._env}")
        self._check_container(node, path[-1], where)
        return node, path[-1]

    def _check_container(self, node: Any, seg: str | int, where: list[str | int]) -> None:
        here = format_path(tuple(where), "values")
        if is_secret_node(node):
            raise PathError(
                f"the path runs through the secret at {here} in {self._env}",
                hint="a secret is a single value; set the path itself, not a path below it",
            )
        if isinstance(seg, int) and not isinstance(node, list):
            raise PathError(
                f"{here} in {self._env} is {_kind(node)}, not a list, so [{seg}] cannot index it",
                hint="use a key, not an index, or change the value at that path first",
            )
        if isinstance(seg, str) and not isinstance(node, dict):
            raise PathError(
                f"the path runs through a scalar: {here} in {self._env} is {_kind(node)}, so it has no key {seg!r}",
                hint=f"set {here} to an object first, or pick another path",
            )

    def _step(self, node: Any, seg: str | int, where: list[str | int], create: bool, cmap: type) -> Any:
        if node is None:
            raise PathError(f"{format_path(tuple(where), 'values')} does not exist in {self._env}")
        self._check_container(node, seg, where)
        if isinstance(seg, int):
            if seg >= len(node):
                raise PathError(
                    f"{format_path((*where, seg), 'values')} is out of range in {self._env}: "
                    f"the list has {len(node)} items"
                )
            return node[seg]
        child = node.get(seg)
        if child is None and create and seg not in node:
            child = cmap()
            node[seg] = child
        return child

    def get(self, path: Path) -> Any:
        """The value at ``values.<path>``; ``PathError`` when it does not exist."""
        if not path:
            return self._values(create=False)
        if not self.contains(path):
            raise PathError(f"{format_path(path, 'values')} does not exist in {self._env}")
        parent, last = self._walk_to_parent(path, create=False)
        return parent[last]

    def contains(self, path: Path) -> bool:
        try:
            parent, last = self._walk_to_parent(path, create=False)
        except PathError:
            return False
        if isinstance(last, int):
            return last < len(parent)
        return last in parent

    def set(self, path: Path, value: Any) -> None:
        """Set ``values.<path>`` to ``value``, creating objects on the way."""
        if not path:
            raise PathError("an empty path cannot be set", hint="name the value to set, for example a.b")
        parent, last = self._walk_to_parent(path, create=True)
        if isinstance(last, int):
            if last < len(parent):
                parent[last] = value
            elif last == len(parent):
                parent.append(value)
            else:
                raise PathError(
                    f"{format_path(path, 'values')} is out of range in {self._env}: the list has {len(parent)} items",
                    hint=f"use an index up to {len(parent)} to append",
                )
        else:
            _carry_comment(parent, last, value)
            parent[last] = value

    def delete(self, path: Path) -> None:
        if not path:
            raise PathError("an empty path cannot be removed")
        parent, last = self._walk_to_parent(path, create=False)
        if isinstance(last, int):
            if last >= len(parent):
                raise PathError(f"{format_path(path, 'values')} does not exist in {self._env}")
            del parent[last]
        else:
            if last not in parent:
                raise PathError(
                    f"{format_path(path, 'values')} does not exist in {self._env}",
                    hint=f"run `strongroom env get {self._env}` to see its values",
                )
            del parent[last]

    # -- secrets ------------------------------------------------------------------------------

    def secret_nodes(self) -> Iterator[tuple[Path, Any]]:
        """Every ``fn::secret`` node with its path from the root."""

        def walk(node: Any, path: Path) -> Iterator[tuple[Path, Any]]:
            if is_secret_node(node):
                yield path, node
            elif isinstance(node, dict):
                for k, v in node.items():
                    yield from walk(v, (*path, str(k)))
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    yield from walk(v, (*path, i))

        yield from walk(self._root, ())

    def has_plaintext_secrets(self) -> bool:
        return any(not isinstance(n[SECRET_FN], dict) for _, n in self.secret_nodes())

    def encrypt_secrets(self, encrypt: Callable[[str], str]) -> int:
        """Replace every ``fn::secret: PLAINTEXT`` with ``fn::secret: {ciphertext: ...}``."""
        from ruamel.yaml.comments import CommentedMap

        count = 0
        for _path, node in list(self.secret_nodes()):
            arg = node[SECRET_FN]
            if isinstance(arg, dict):
                continue
            sealed = CommentedMap()
            sealed["ciphertext"] = encrypt(str(arg))
            _carry_comment(node, SECRET_FN, sealed)
            node[SECRET_FN] = sealed
            count += 1
        return count


def _carry_comment(parent: Any, key: object, new_value: Any) -> None:
    """Keep a comment that trailed ``parent[key]``'s scalar where it was once that scalar becomes a mapping.

    ruamel attaches the comment lines *after* a scalar value to that value's key; once the
    value is a nested mapping they would print between the key and its children.
    """
    items = getattr(getattr(parent, "ca", None), "items", None)
    if not isinstance(new_value, dict) or not new_value or not items or key not in items:
        return
    entry = items[key]
    if len(entry) > 2 and entry[2] is not None:
        mapping: Any = new_value
        last = list(mapping)[-1]
        mapping.ca.items[last] = [None, None, entry[2], None]
        entry[2] = None


def _kind(node: Any) -> str:
    if node is None:
        return "null"
    if isinstance(node, bool):
        return "a boolean"
    if isinstance(node, int | float):
        return "a number"
    if isinstance(node, str):
        return "a string"
    if isinstance(node, list):
        return "a list"
    return "an object"


def _scalar(node: Any) -> Any:
    if node is None or isinstance(node, bool | int | float | str):
        if isinstance(node, str):
            return str(node)
        if isinstance(node, bool):
            return bool(node)
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        return node
    if hasattr(node, "isoformat"):
        return str(node.isoformat())
    return str(node)


def _check(root: Any, env: str) -> list[Diagnostic]:
    """Structural checks of a stored definition (the language adds its own)."""
    diags: list[Diagnostic] = []

    def diag(message: str, node: Any, key: object, path: str) -> None:
        line, col = _position(node, key)
        diags.append(Diagnostic(message, "error", env, line, col, path))

    if root is None:
        return diags
    if not isinstance(root, dict):
        diags.append(
            Diagnostic(
                f"a definition must be a YAML mapping with `values`, not {_kind(root)}",
                environment=env,
                line=1,
                column=1,
            )
        )
        return diags
    for key in root:
        if not isinstance(key, str):
            diag(f"keys must be strings, not {_kind(key)} {key!r}", root, key, "")
    imports = root.get("imports")
    if imports is not None and not isinstance(imports, list):
        diag("`imports` must be a list of environment names", root, "imports", "imports")
    values = root.get("values")
    if values is not None and not isinstance(values, dict):
        diag("`values` must be a mapping of names to values", root, "values", "values")

    def walk(node: Any, path: Path) -> None:
        if isinstance(node, dict):
            if SECRET_FN in node:
                arg = node[SECRET_FN]
                if len(node) != 1:
                    diag("`fn::secret` must be the only key of its mapping", node, SECRET_FN, format_path(path))
                elif isinstance(arg, dict):
                    token = arg.get("ciphertext")
                    if len(arg) != 1 or not isinstance(token, str):
                        diag(
                            "`fn::secret` takes a string, or `{ciphertext: ...}` as Strongroom stores it",
                            node,
                            SECRET_FN,
                            format_path(path),
                        )
                elif not isinstance(arg, str):
                    diag(
                        f"`fn::secret` takes a string, not {_kind(arg)}",
                        node,
                        SECRET_FN,
                        format_path(path),
                    )
                return
            for k, v in node.items():
                if not isinstance(k, str):
                    diag(f"keys must be strings, not {_kind(k)} {k!r}", node, k, format_path(path))
                    continue
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))
        elif getattr(node, "tag", None) is not None and str(getattr(node.tag, "value", "") or "").startswith("!"):
            diags.append(Diagnostic(f"unsupported YAML tag {node.tag.value}", environment=env, path=format_path(path)))

    walk(root, ())
    return diags


def parse_definition(text: str, env: str) -> Document:
    """Parse and check a definition. ``DefinitionError`` lists every problem found."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DEFINITION_BYTES:
        raise TooLargeError(
            f"the definition of {env} is larger than the {MAX_DEFINITION_BYTES // 1024} KiB limit",
            hint="split it into several environments joined by imports",
        )
    if "\x00" in text:
        raise DefinitionError(f"the definition of {env} contains a NUL character", hint="remove it")
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        root = _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        col = mark.column + 1 if mark is not None else None
        problem = str(exc.problem or exc.context or "invalid YAML")
        if "duplicate key" in problem:
            # ruamel quotes both values in this message; a value may be a secret, so name the key only.
            match = re.match(r'found duplicate key "(.*?)" with value', problem, re.S)
            problem = f"duplicate key {match.group(1)!r}" if match else "duplicate key"
        diag = Diagnostic(f"malformed YAML: {problem}", "error", env, line, col)
        raise DefinitionError(
            f"malformed YAML in {env}: {problem}" + (f" at line {line}, column {col}" if line else ""),
            diagnostics=(diag,),
            hint="fix the YAML and try again; nothing was saved",
        ) from None
    except (YAMLError, ValueError, TypeError, RecursionError) as exc:
        raise DefinitionError(
            f"malformed YAML in {env}: {type(exc).__name__}",
            diagnostics=(Diagnostic("malformed YAML", environment=env),),
            hint="fix the YAML and try again; nothing was saved",
        ) from None
    diags = _check(root, env)
    if diags:
        first = diags[0]
        more = f" (and {len(diags) - 1} more)" if len(diags) > 1 else ""
        raise DefinitionError(
            f"invalid definition: {first}{more}",
            diagnostics=tuple(diags),
            hint="fix the definition and try again; nothing was saved",
        )
    doc = Document(root, env)
    doc.to_plain()  # enforces MAX_NODES before anything is stored
    return doc

"""Field management and server-side apply for the fake Kubernetes API server.

Follows "Server-Side Apply" (https://kubernetes.io/docs/reference/using-api/server-side-apply/):
"Field management", "Conflicts", "Managers", "Apply and Update" and "Merge strategy".

An approximation of ``sigs.k8s.io/structured-merge-diff``, deliberately simpler:

* A field set is a set of *paths*; a path is a tuple of ``fieldsV1`` tokens: ``f:<name>`` for a map
  key, ``k:{"name":"app"}`` for an item of a keyed list (see
  :data:`~strongroom.testing._kube_patch.LIST_MERGE_KEYS`) and ``.`` for "the item itself". Only leaves
  are recorded (plus ``.`` for keyed-list items): a scalar, an atomic list, or an empty map. So a Secret
  applied with ``data: {KEY: ...}`` and a label owns ``f:data.f:KEY`` and ``f:metadata.f:labels.f:app``.
* Maps are always granular, lists are atomic unless keyed; sets of scalars (``finalizers``) are atomic.
* ``apiVersion``, ``kind``, ``status`` and the system-set ``metadata`` fields (name, namespace, uid,
  resourceVersion, generation, creationTimestamp, managedFields ...) are never owned.
* Managers are told apart by ``(manager, operation)``; ``subresource`` is always empty.
"""

from __future__ import annotations

__all__ = [
    "ApplyConflict",
    "ManagedEntry",
    "Path",
    "apply_config",
    "decode_managed_fields",
    "encode_managed_fields",
    "leaf_values",
    "path_string",
    "record_update",
]

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from strongroom.testing._kube_patch import LIST_MERGE_KEYS

Path = tuple[str, ...]

_ITEM = "."
_ITEM_VALUE: Any = object()  # the value recorded for an item marker: never compared
_SYSTEM_METADATA = {
    "name",
    "namespace",
    "generateName",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
}
_UNOWNED_TOP_LEVEL = {"apiVersion", "kind", "status"}


@dataclass(frozen=True)
class ManagedEntry:
    """One ``metadata.managedFields`` entry: who owns which fields, and through which operation."""

    manager: str
    operation: str  # "Apply" or "Update"
    api_version: str
    time: str
    fields: frozenset[Path]

    def describe(self) -> str:
        """The manager as the API server prints it in conflict messages."""
        if self.operation == "Update":
            return f'"{self.manager}" using {self.api_version} at {self.time}'
        return f'"{self.manager}"'

    def to_json(self) -> dict[str, Any]:
        """This entry as it appears in ``metadata.managedFields``."""
        return {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": _encode_fields(self.fields),
        }


class ApplyConflict(Exception):
    """An apply would change fields that other managers own: ``(entry, path)`` pairs."""

    def __init__(self, conflicts: Sequence[tuple[ManagedEntry, Path]]) -> None:
        super().__init__(f"{len(conflicts)} apply conflict(s)")
        self.conflicts: tuple[tuple[ManagedEntry, Path], ...] = tuple(conflicts)

    def message(self) -> str:
        """The message the API server sends (``Apply failed with N conflict(s): ...``)."""
        if len(self.conflicts) == 1:
            entry, path = self.conflicts[0]
            return f"Apply failed with 1 conflict: conflict with {entry.describe()}: {path_string(path)}"
        by_manager: dict[str, list[Path]] = {}
        for entry, path in self.conflicts:
            by_manager.setdefault(entry.describe(), []).append(path)
        lines: list[str] = []
        for manager, paths in by_manager.items():
            lines.append(f"conflicts with {manager}:")
            lines.extend(f"- {path_string(path)}" for path in paths)
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict[str, str]]:
        """One ``FieldManagerConflict`` cause per conflicting field."""
        return [
            {
                "reason": "FieldManagerConflict",
                "message": f"conflict with {entry.describe()}",
                "field": path_string(path),
            }
            for entry, path in self.conflicts
        ]


# --------------------------------------------------------------------------- paths


def _item_token(key: str, value: Any) -> str:
    return "k:" + json.dumps({key: value}, separators=(",", ":"), sort_keys=True)


def path_string(path: Path) -> str:
    """``.data.KEY`` / ``.spec.template.spec.containers[name="app"].image``, as in conflict messages."""
    out: list[str] = []
    for token in path:
        if token.startswith("f:"):
            out.append("." + token[2:])
        elif token.startswith("k:"):
            item = json.loads(token[2:])
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in item.items()) + "]")
    return "".join(out)


def _keyed(name: str, items: list[Any]) -> str | None:
    """The merge key of list ``name`` if every item has a distinct value for it, else ``None``."""
    key = LIST_MERGE_KEYS.get(name)
    if key is None:
        return None
    seen: list[Any] = []
    for item in items:
        if not isinstance(item, dict) or key not in item or item[key] in seen:
            return None
        seen.append(item[key])
    return key


def _walk_map(value: Mapping[str, Any], prefix: Path, out: dict[Path, Any]) -> None:
    for name, item in value.items():
        path = (*prefix, f"f:{name}")
        if isinstance(item, dict) and item:
            _walk_map(item, path, out)
        elif isinstance(item, list) and item and (key := _keyed(name, item)) is not None:
            for element in item:
                item_path = (*path, _item_token(key, element[key]))
                out[(*item_path, _ITEM)] = _ITEM_VALUE
                _walk_map(element, item_path, out)
        else:
            out[path] = item


def leaf_values(body: Mapping[str, Any]) -> dict[Path, Any]:
    """Every ownable leaf of ``body`` with its value (see the module docstring)."""
    out: dict[Path, Any] = {}
    for name, value in body.items():
        if name in _UNOWNED_TOP_LEVEL:
            continue
        if name == "metadata" and isinstance(value, dict):
            owned = {k: v for k, v in value.items() if k not in _SYSTEM_METADATA}
            if owned:
                _walk_map(owned, ("f:metadata",), out)
            continue
        if isinstance(value, dict) and value:
            _walk_map(value, (f"f:{name}",), out)
        elif isinstance(value, list) and value and _keyed(name, value) is not None:
            _walk_map({name: value}, (), out)
        else:
            out[(f"f:{name}",)] = value
    return out


def _find_item(items: list[Any], token: str) -> int | None:
    wanted = json.loads(token[2:])
    for index, item in enumerate(items):
        if isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items()):
            return index
    return None


def _get(body: Any, path: Path) -> tuple[bool, Any]:
    node = body
    for token in path:
        if token == _ITEM:
            return True, node
        if token.startswith("f:") and isinstance(node, dict) and token[2:] in node:
            node = node[token[2:]]
        elif token.startswith("k:") and isinstance(node, list) and (index := _find_item(node, token)) is not None:
            node = node[index]
        else:
            return False, None
    return True, node


def _set(body: dict[str, Any], path: Path, value: Any) -> None:
    node: Any = body
    for position, token in enumerate(path):
        last = position == len(path) - 1
        if token == _ITEM:
            return
        if token.startswith("f:"):
            name = token[2:]
            if last:
                if isinstance(value, dict) and not value:
                    if not isinstance(node.get(name), dict):
                        node[name] = {}
                else:
                    node[name] = copy.deepcopy(value)
                return
            following = path[position + 1]
            if following.startswith("k:"):
                if not isinstance(node.get(name), list):
                    node[name] = []
            elif not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
        else:  # k: token
            index = _find_item(node, token)
            if index is None:
                node.append(dict(json.loads(token[2:])))
                index = len(node) - 1
            node = node[index]


def _remove(body: dict[str, Any], path: Path) -> None:
    """Remove the field at ``path`` (a whole keyed-list item for ``.``), pruning maps it leaves empty."""
    if path and path[-1] == _ITEM:
        parent_path, token = path[:-2], path[-2]
        found, items = _get(body, parent_path)
        if found and isinstance(items, list) and (index := _find_item(items, token)) is not None:
            del items[index]
            if not items:
                _remove(body, parent_path)
        return
    found, parent = _get(body, path[:-1])
    if not found or not path[-1].startswith("f:") or not isinstance(parent, dict):
        return
    parent.pop(path[-1][2:], None)
    # Prune maps left empty, but never a top-level field such as ``metadata`` or ``spec``.
    if not parent and len(path) > 2 and path[-2].startswith("f:"):
        _remove(body, path[:-1])


# --------------------------------------------------------------------------- fieldsV1


def _encode_fields(fields: Iterable[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(fields):
        node = root
        for token in path:
            node = node.setdefault(token, {})
    return root


def _decode_fields(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for token, child in tree.items():
        path = (*prefix, token)
        if isinstance(child, Mapping) and child:
            paths |= _decode_fields(child, path)
        else:
            paths.add(path)
    return paths


def encode_managed_fields(entries: Sequence[ManagedEntry]) -> list[dict[str, Any]]:
    """``metadata.managedFields`` for ``entries``."""
    return [entry.to_json() for entry in entries]


def decode_managed_fields(raw: Any) -> list[ManagedEntry] | None:
    """Entries from a client-sent ``metadata.managedFields``; ``None`` if it is not a valid list."""
    if not isinstance(raw, list):
        return None
    entries: list[ManagedEntry] = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("manager"), str):
            return None
        tree = item.get("fieldsV1") or {}
        entries.append(
            ManagedEntry(
                manager=item["manager"],
                operation=str(item.get("operation") or "Update"),
                api_version=str(item.get("apiVersion") or ""),
                time=str(item.get("time") or ""),
                fields=frozenset(_decode_fields(tree) if isinstance(tree, Mapping) else ()),
            )
        )
    return entries


# --------------------------------------------------------------------------- operations


def _without_empty(entries: Iterable[ManagedEntry]) -> list[ManagedEntry]:
    return [entry for entry in entries if entry.fields]


def record_update(
    entries: Sequence[ManagedEntry],
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    manager: str,
    api_version: str,
    now: str,
) -> list[ManagedEntry]:
    """Ownership after a non-apply write (create, replace, patch) by ``manager`` ("Apply and Update").

    The writer takes every field it added or changed from whoever owned it; fields it removed
    leave every manager's set.
    """
    old_leaves = leaf_values(old) if old is not None else {}
    new_leaves = leaf_values(new)
    changed = {
        path
        for path, value in new_leaves.items()
        if path not in old_leaves or (value is not _ITEM_VALUE and old_leaves[path] != value)
    }
    removed = set(old_leaves) - set(new_leaves)
    result: list[ManagedEntry] = []
    found = False
    for entry in entries:
        if entry.manager == manager and entry.operation == "Update":
            found = True
            fields = (entry.fields | changed) - removed
            result.append(replace(entry, fields=frozenset(fields), time=now if changed else entry.time))
        else:
            result.append(replace(entry, fields=entry.fields - changed - removed))
    if not found and changed:
        result.append(ManagedEntry(manager, "Update", api_version, now, frozenset(changed)))
    return _without_empty(result)


def apply_config(
    live: Mapping[str, Any] | None,
    entries: Sequence[ManagedEntry],
    applied: Mapping[str, Any],
    manager: str,
    *,
    force: bool,
    api_version: str,
    now: str,
) -> tuple[dict[str, Any], list[ManagedEntry]]:
    """Merge the applied configuration into ``live`` ("Merge strategy") and work out ownership.

    Raises :class:`ApplyConflict` when an applied value differs from the live value of a field that
    another manager owns, unless ``force`` (which moves ownership to ``manager``). Fields that
    ``manager`` applied last time but not now are removed unless another manager owns them.
    """
    base: dict[str, Any] = copy.deepcopy(dict(live)) if live is not None else {}
    applied_leaves = leaf_values(applied)
    own_previous: frozenset[Path] = frozenset()
    conflicts: list[tuple[ManagedEntry, Path]] = []
    for entry in entries:
        if entry.manager == manager and entry.operation == "Apply":
            own_previous = entry.fields
            continue
        for path in sorted(entry.fields & applied_leaves.keys()):
            if path[-1] == _ITEM:
                continue
            found, current = _get(base, path)
            wanted = applied_leaves[path]
            if isinstance(wanted, dict) and not wanted and isinstance(current, dict):
                continue
            if found and current != wanted:
                conflicts.append((entry, path))
    if conflicts and not force:
        raise ApplyConflict(tuple(conflicts))

    merged = base
    for path, value in applied_leaves.items():
        _set(merged, path, value)  # an item marker (``.``) only makes sure the keyed-list item exists

    lost: dict[int, set[Path]] = {}
    for entry, path in conflicts:
        lost.setdefault(id(entry), set()).add(path)
    others: list[ManagedEntry] = []
    for entry in entries:
        if entry.manager == manager and entry.operation == "Apply":
            continue
        others.append(replace(entry, fields=entry.fields - lost.get(id(entry), set())))

    owned_by_others: set[Path] = set().union(*(entry.fields for entry in others)) if others else set()
    still_applied = set(applied_leaves)
    dropped = own_previous - still_applied
    for path in sorted(dropped, key=len, reverse=True):
        if path in owned_by_others:
            continue
        # Keep a field that still holds something applied or owned (e.g. ``data: {}`` applied before,
        # ``data: {KEY: ...}`` now), and a keyed-list item any field of which someone still owns.
        prefix = path[:-1] if path[-1] == _ITEM else path
        if any(other[: len(prefix)] == prefix for other in owned_by_others | still_applied):
            continue
        _remove(merged, path)

    # Keep the entries in their order, the applier's entry where it was (or last if it is new).
    own = ManagedEntry(manager, "Apply", api_version, now, frozenset(applied_leaves))
    remaining = iter(others)
    result: list[ManagedEntry] = []
    for entry in entries:
        result.append(own if entry.manager == manager and entry.operation == "Apply" else next(remaining))
    if len(result) == len(others):
        result.append(own)
    return merged, _without_empty(result)

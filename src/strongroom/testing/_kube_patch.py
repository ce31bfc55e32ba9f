"""PATCH semantics of the fake Kubernetes API server (:mod:`strongroom.testing.kube_api`).

"Updates to existing resources" in https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply
and "PATCH operations" in the API conventions name the patch types, chosen by ``Content-Type``:

* ``application/json-patch+json``: RFC 6902 JSON Patch (:func:`json_patch`);
* ``application/merge-patch+json``: RFC 7386 JSON Merge Patch (:func:`merge_patch`);
* ``application/strategic-merge-patch+json``: Kubernetes' strategic merge patch
  (:func:`strategic_merge_patch`), see
  https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md.
  Lists with a merge key (``containers``, ``env``, ``volumes`` ... see :data:`LIST_MERGE_KEYS`) are merged
  item by item; other lists are replaced. The ``$patch: replace|delete``, ``$retainKeys``,
  ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>`` directives are understood
  (the last one is accepted and ignored). ``metadata.finalizers`` merges as a set.

Server-side apply (``application/apply-patch+yaml``) lives in :mod:`strongroom.testing._kube_fields`.
"""

from __future__ import annotations

__all__ = ["LIST_MERGE_KEYS", "PatchError", "PatchFormatError", "json_patch", "merge_patch", "strategic_merge_patch"]

import copy
from typing import Any

#: Field name -> merge key of the lists that strategic merge patch and server-side apply treat as
#: maps keyed by that field (``patchMergeKey`` / ``listMapKey`` in the Kubernetes types).
#: Every other list is atomic: replaced whole.
LIST_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ports": "containerPort",
    "hostAliases": "ip",
    "ownerReferences": "uid",
}

#: Lists of scalars that strategic merge patch merges as sets instead of replacing.
_PRIMITIVE_MERGE_LISTS = {"finalizers"}


class PatchError(ValueError):
    """A patch that cannot be applied to the object; the server answers 422 ``Invalid``."""


class PatchFormatError(PatchError):
    """A patch that is not a patch of its type at all; the server answers 400 ``BadRequest``."""


# --------------------------------------------------------------------------- RFC 7386


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON Merge Patch: objects merge recursively, ``null`` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------- RFC 6902


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise PatchError(f"invalid JSON pointer {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer must start with '/': {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError(f"array index {index} out of range")
    return index


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"doc is missing path: {path!r}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return node


def _get(doc: Any, path: str) -> Any:
    node = doc
    for token in _pointer(path):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return node


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], allow_end=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise PatchError(f"unable to remove nonexistent key: {tokens[-1]}: missing value")
        return doc, parent.pop(tokens[-1])
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, tokens[-1], allow_end=False))
    raise PatchError(f"doc is missing path: {path!r}")


def json_patch(document: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON Patch (``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test``)."""
    if not isinstance(operations, list):
        raise PatchFormatError("a JSON patch must be an array of operations")
    doc = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchFormatError(f"invalid JSON patch operation {operation!r}")
        op, path = operation["op"], operation["path"]
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"missing value for {op} operation")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(operation["value"]))
        elif op == "remove":
            doc, _ = _remove(doc, path)
        elif op == "replace":
            _get(doc, path)
            doc, _ = _remove(doc, path) if _pointer(path) else (doc, None)
            doc = _add(doc, path, copy.deepcopy(operation["value"]))
        elif op == "move":
            source = operation.get("from")
            if not isinstance(source, str):
                raise PatchError("missing from for move operation")
            doc, value = _remove(doc, source)
            doc = _add(doc, path, value)
        elif op == "copy":
            source = operation.get("from")
            if not isinstance(source, str):
                raise PatchError("missing from for copy operation")
            doc = _add(doc, path, copy.deepcopy(_get(doc, source)))
        elif op == "test":
            if _get(doc, path) != operation["value"]:
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchFormatError(f"unexpected kind: {op}")
    return doc


# --------------------------------------------------------------------------- strategic merge patch

_DELETE: Any = object()


def _strip(value: Any) -> Any:
    """A patch value placed where nothing was: drop directives and ``null`` entries."""
    if isinstance(value, dict):
        return {key: _strip(item) for key, item in value.items() if item is not None and not key.startswith("$")}
    if isinstance(value, list):
        return [_strip(item) for item in value if not (isinstance(item, dict) and "$patch" in item)]
    return copy.deepcopy(value)


def _merge_keyed_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            result.append(_strip(item))
            continue
        position = next(
            (i for i, existing in enumerate(result) if isinstance(existing, dict) and existing.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
            continue
        if position is None:
            result.append(_strip(item))
        else:
            merged = _merge_map(result[position], item)
            if merged is _DELETE:
                del result[position]
            else:
                result[position] = merged
    return result


def _merge_map(current: dict[str, Any], patch: dict[str, Any]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip(patch)
    result = copy.deepcopy(current)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        existing = result.get(key)
        if isinstance(value, dict):
            merged = _merge_map(existing if isinstance(existing, dict) else {}, value)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and key in LIST_MERGE_KEYS and isinstance(existing, list):
            result[key] = _merge_keyed_list(existing, value, LIST_MERGE_KEYS[key])
        elif isinstance(value, list) and key in _PRIMITIVE_MERGE_LISTS and isinstance(existing, list):
            result[key] = existing + [item for item in value if item not in existing]
        else:
            result[key] = _strip(value)
    if isinstance(retain, list):
        result = {key: item for key, item in result.items() if key in retain}
    return result


def strategic_merge_patch(original: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a strategic merge patch to ``original`` (see the module docstring for what is supported)."""
    if not isinstance(patch, dict):
        raise PatchFormatError("a strategic merge patch must be a JSON object")
    merged = _merge_map(original, patch)
    if merged is _DELETE:
        raise PatchError("cannot delete the whole object with a patch")
    result: dict[str, Any] = merged
    return result

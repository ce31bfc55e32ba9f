"""Reading and writing Pulumi stack files round-trip, and the record of the keys Strongroom manages.

The stack file (``Pulumi.<stack>.yaml`` or ``.yml``) is edited with ruamel.yaml in round-trip
mode so that comments, key order and everything Strongroom does not manage stay as they were.
Which keys Strongroom wrote is kept in ``.strongroom-pulumi.json`` next to it: Pulumi rewrites
the stack file from its own struct on ``pulumi config set``, so an extra top-level key there
would be dropped (see docs/pulumi.md).
"""

from __future__ import annotations

__all__ = [
    "TRACKING_FILE",
    "StackFile",
    "detect_provider",
    "find_stack_file",
    "project_name",
    "read_managed",
    "write_atomic",
    "write_managed",
]

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strongroom.errors import InvalidInputError, InvalidNameError, NotFoundError

TRACKING_FILE = ".strongroom-pulumi.json"
_STACK_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
_DIY_SCHEMES = ("file://", "s3://", "azblob://", "gs://", "postgres://", "postgresql://")
_CLOUD_PROVIDERS = {
    "awskms": "AWS KMS",
    "azurekeyvault": "Azure Key Vault",
    "gcpkms": "Google Cloud KMS",
    "hashivault": "HashiCorp Vault",
}
_INSTEAD = (
    "not supported yet; instead either feed the values through the Automation API "
    "(strongroom.pulumi.stack_config(ENV) with Stack.set_all_config, which lets Pulumi encrypt them), "
    "or switch the stack to the passphrase provider with `pulumi stack change-secrets-provider passphrase`"
)


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1_000_000  # never fold long ciphertexts
    return yaml


def stack_file_name(stack: str) -> str:
    """The file part of a stack name (``org/project/dev`` -> ``dev``), checked."""
    name = stack.rsplit("/", 1)[-1]
    if not _STACK_NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid stack name {stack!r}", hint="use letters, digits, '.', '-' and '_' (as `pulumi stack init`)"
        )
    return name


def find_stack_file(cwd: Path, stack: str) -> Path:
    """``cwd/Pulumi.<stack>.yaml`` or ``.yml`` (the one that exists; ``.yaml`` when neither does)."""
    name = stack_file_name(stack)
    candidates = [cwd / f"Pulumi.{name}.yaml", cwd / f"Pulumi.{name}.yml"]
    found = [p for p in candidates if p.is_file()]
    if len(found) == 2:
        raise InvalidInputError(
            f"both {found[0].name} and {found[1].name} exist in {cwd}", hint="keep one of them, as Pulumi reads one"
        )
    return found[0] if found else candidates[0]


def _project_doc(cwd: Path) -> dict[str, Any] | None:
    for candidate in (cwd / "Pulumi.yaml", cwd / "Pulumi.yml"):
        if candidate.is_file():
            from ruamel.yaml import YAML
            from ruamel.yaml.error import YAMLError

            try:
                loaded = YAML(typ="safe", pure=True).load(candidate.read_text(encoding="utf-8"))
            except (YAMLError, UnicodeDecodeError) as exc:
                raise InvalidInputError(f"{candidate.name} is not valid YAML: {exc}") from None
            return loaded if isinstance(loaded, dict) else None
    return None


def project_name(cwd: Path) -> str | None:
    """The ``name:`` of the Pulumi project in ``cwd`` (``Pulumi.yaml``/``.yml``), if any."""
    doc = _project_doc(cwd)
    name = doc.get("name") if doc else None
    return name if isinstance(name, str) and name else None


def _backend_url(cwd: Path, environ: Any) -> str | None:
    url = environ.get("PULUMI_BACKEND_URL")
    if url:
        return str(url)
    doc = _project_doc(cwd)
    backend = doc.get("backend") if doc else None
    if isinstance(backend, dict) and isinstance(backend.get("url"), str):
        return str(backend["url"])
    return None


@dataclass
class StackFile:
    """A loaded stack file: its path, original bytes (``None`` when new) and round-trip document."""

    path: Path
    original: bytes | None
    doc: Any  # ruamel CommentedMap
    indent: int = 2
    sequence_indent: int = 4

    @classmethod
    def load(cls, path: Path) -> StackFile:
        from ruamel.yaml.comments import CommentedMap
        from ruamel.yaml.error import YAMLError

        if not path.exists():
            return cls(path, None, CommentedMap())
        original = path.read_bytes()
        try:
            text = original.decode("utf-8-sig")
            indent, seq_indent = _guess_indent(text)
            doc = _yaml().load(text)
        except (YAMLError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path.name} is not valid YAML: {exc}") from None
        if doc is None:
            doc = CommentedMap()
        if not isinstance(doc, CommentedMap):
            raise InvalidInputError(f"{path.name} must be a YAML mapping (secretsprovider, encryptionsalt, config)")
        config = doc.get("config")
        if config is not None and not isinstance(config, CommentedMap):
            raise InvalidInputError(f"{path.name}: config must be a mapping of keys to values")
        return cls(path, original, doc, indent, seq_indent)

    @property
    def config(self) -> Any:
        from ruamel.yaml.comments import CommentedMap

        config = self.doc.get("config")
        return config if isinstance(config, CommentedMap) else CommentedMap()

    def ensure_config(self) -> Any:
        from ruamel.yaml.comments import CommentedMap

        config = self.doc.get("config")
        if not isinstance(config, CommentedMap):
            config = CommentedMap()
            self.doc["config"] = config
        return config

    def set_encryption_salt(self, state: str) -> None:
        if "encryptionsalt" in self.doc:
            self.doc["encryptionsalt"] = state
        else:
            self.doc.insert(0, "encryptionsalt", state)

    def dump(self) -> bytes:
        import io

        yaml = _yaml()
        yaml.indent(mapping=self.indent, sequence=self.sequence_indent, offset=max(self.sequence_indent - 2, 0))
        out = io.StringIO()
        yaml.dump(self.doc, out)
        return out.getvalue().encode("utf-8")


_LINE = re.compile(r"^( *)(- )?([^#\s].*)$")


def _guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, sequence indent) as the file has them; 2 and 4 (dash offset 2) by default.

    The sequence indent is where an item's content starts relative to its parent key, so
    ``key:\n- a`` is 2 and ``key:\n  - a`` is 4.
    """
    mapping: int | None = None
    sequence: int | None = None
    parent: tuple[int, bool] | None = None  # (indent, ends with ":") of the previous content line
    for raw in text.splitlines():
        match = _LINE.match(raw)
        if match is None:
            continue
        spaces, dash, rest = len(match.group(1)), match.group(2), match.group(3)
        if parent is not None and parent[1]:
            step = spaces - parent[0]
            if dash and sequence is None and step >= 0:
                sequence = step + 2
            elif not dash and mapping is None and step > 0:
                mapping = step
        parent = (spaces + (2 if dash else 0), rest.rstrip().endswith(":") and not dash)
        if mapping is not None and sequence is not None:
            break
    return mapping or 2, sequence or 4


def detect_provider(stack: StackFile, cwd: Path, environ: Any) -> str:
    """``"passphrase"`` (an ``encryptionsalt`` is there), ``"new"`` (one may be created), or raise.

    Decided from the stack file, ``Pulumi.yaml``'s ``backend.url`` and ``PULUMI_BACKEND_URL``:
    a cloud ``secretsprovider`` (awskms, azurekeyvault, gcpkms, hashivault) or the Pulumi Cloud
    provider (``default``/``service``, or no salt with a Pulumi Cloud backend or existing
    ``secure:`` values) is not supported.
    """
    name = stack.path.name
    provider = stack.doc.get("secretsprovider")
    salt = stack.doc.get("encryptionsalt")
    if isinstance(provider, str) and provider and provider != "passphrase":
        scheme = provider.split("://", 1)[0]
        what = _CLOUD_PROVIDERS.get(scheme)
        if what is None and scheme in ("default", "service", "https", "http"):
            what = "Pulumi Cloud"
        what = what or f"the {scheme}"
        raise InvalidInputError(f"{name} uses the {what} secrets provider ({scheme}), which Strongroom: " + _INSTEAD)
    if stack.doc.get("encryptedkey") and not salt:
        raise InvalidInputError(f"{name} has an encryptedkey (a cloud secrets provider), which Strongroom: " + _INSTEAD)
    if isinstance(salt, str) and salt:
        return "passphrase"
    backend = _backend_url(cwd, environ)
    if backend is not None and backend.startswith(_DIY_SCHEMES):
        return "new"
    if backend is not None and backend.startswith(("https://", "http://")):
        raise InvalidInputError(
            f"{name} has no encryptionsalt and the backend is Pulumi Cloud ({backend}), so it uses the "
            "Pulumi Cloud secrets provider, which Strongroom: " + _INSTEAD
        )
    if _has_secure(stack.config):
        raise InvalidInputError(
            f"{name} holds secure: values but no encryptionsalt: they belong to the Pulumi Cloud secrets provider, "
            "which Strongroom: " + _INSTEAD
        )
    return "new"


def _has_secure(node: Any) -> bool:
    if isinstance(node, dict):
        if set(node) == {"secure"}:
            return True
        return any(_has_secure(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_secure(v) for v in node)
    return False


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: a temp file in the same folder, fsync, rename. Keeps the file mode."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _tracking_path(stack_path: Path) -> Path:
    return stack_path.parent / TRACKING_FILE


def _read_tracking(stack_path: Path) -> dict[str, Any]:
    path = _tracking_path(stack_path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "stacks": {}}
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError(f"{path} is not valid JSON", hint="restore it from version control") from None
    if not isinstance(data, dict) or not isinstance(data.get("stacks"), dict):
        raise InvalidInputError(f"{path} is not a Strongroom record of managed Pulumi keys")
    return data


def read_managed(stack_path: Path) -> list[str]:
    """The config keys Strongroom wrote into this stack file (in the order it wrote them)."""
    entry = _read_tracking(stack_path)["stacks"].get(stack_path.name)
    keys = entry.get("keys") if isinstance(entry, dict) else None
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


def write_managed(stack_path: Path, keys: list[str], environment: str) -> None:
    data = _read_tracking(stack_path)
    data["version"] = 1
    if keys:
        data["stacks"][stack_path.name] = {"environment": environment, "keys": keys}
    else:
        data["stacks"].pop(stack_path.name, None)
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_atomic(_tracking_path(stack_path), text.encode("utf-8"))


def require_dir(cwd: Path) -> Path:
    if not cwd.is_dir():
        raise NotFoundError(f"no such directory: {cwd}", hint="pass the Pulumi project folder with --cwd")
    return cwd.resolve()

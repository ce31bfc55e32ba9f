"""The remote CLI's service: the methods the CLI calls on :class:`~strongroom.service.Service`,
answered by a Strongroom server (``STRONGROOM_URL`` with ``STRONGROOM_TOKEN``).

Errors come back as the very Strongroom error the server raised (same class, message,
hint and diagnostics), so a command prints the same line and exits with the same
code as it does against a local store.
"""

from __future__ import annotations

__all__ = ["RemoteService"]

from typing import Any
from urllib.parse import quote

from strongroom import errors
from strongroom.errors import (
    AuthenticationError,
    DefinitionError,
    StoreUnavailableError,
    StrongroomError,
    UsageError,
)
from strongroom.language.paths import Path, format_path
from strongroom.model import EnvironmentRecord, EnvRef, RevisionRef, Secret, TagRecord
from strongroom.service import Change, HistoryEntry, RunData
from strongroom.wire import RemoteEvaluation, RemoteRevision, RemoteValue, decode_diagnostic

_TIMEOUT = 30.0


def _error_classes() -> dict[str, type[StrongroomError]]:
    found: dict[str, type[StrongroomError]] = {}
    stack: list[type[StrongroomError]] = [StrongroomError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


_BY_STATUS: dict[int, type[StrongroomError]] = {
    400: errors.InvalidInputError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    413: errors.TooLargeError,
    503: errors.StoreUnavailableError,
}


class RemoteService:
    """A client of ``strongroom serve`` with the local service's interface (as far as the CLI uses it)."""

    def __init__(self, url: str, token: str | None, *, transport: Any = None) -> None:
        if not token:
            raise UsageError(
                "STRONGROOM_URL is set but STRONGROOM_TOKEN is not",
                hint="create a token with `strongroom token create` on the server and export STRONGROOM_TOKEN",
            )
        import httpx

        self._base = url.rstrip("/") + "/api/v1"
        self._http = httpx.Client(
            headers={"Authorization": f"token {token}", "User-Agent": "strongroom-cli"},
            timeout=_TIMEOUT,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"RemoteService({self._base!r})"

    def close(self) -> None:
        self._http.close()

    @property
    def store(self) -> Any:
        raise UsageError("this command works on a local store only", hint="unset STRONGROOM_URL to use it")

    # -- transport ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._http.request(method, self._base + path, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(
                f"cannot reach the Strongroom server at {self._base} ({type(exc).__name__})",
                hint="check STRONGROOM_URL and that `strongroom serve` is running",
            ) from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text[:200]}
        if response.is_success:
            return body
        raise self._error(response.status_code, body if isinstance(body, dict) else {})

    @staticmethod
    def _error(status: int, body: dict[str, Any]) -> StrongroomError:
        message = str(body.get("message") or f"the server answered {status}")
        hint = body.get("hint")
        cls = _error_classes().get(str(body.get("error")), _BY_STATUS.get(status, StrongroomError))
        if cls is DefinitionError or "diagnostics" in body:
            return DefinitionError(
                message, diagnostics=tuple(decode_diagnostic(d) for d in body.get("diagnostics", [])), hint=hint
            )
        if status == 401 and cls is not AuthenticationError:
            cls = AuthenticationError
        error = cls.__new__(cls)
        StrongroomError.__init__(error, message, hint=hint)
        return error

    @staticmethod
    def _env_path(env: EnvRef) -> str:
        return f"/environments/{quote(env.project, safe='')}/{quote(env.name, safe='')}"

    @staticmethod
    def _rev(ref: RevisionRef) -> str | None:
        return None if ref.selector is None else str(ref.selector)

    # -- reading ------------------------------------------------------------------------------

    def list_environments(
        self, *, project: str | None = None, after: EnvRef | None = None, limit: int | None = None
    ) -> list[EnvironmentRecord]:
        params: dict[str, Any] = {"limit": min(limit or 1000, 1000)}
        if project is not None:
            params["project"] = project
        if after is not None:
            params["after"] = str(after)
        rows = self._call("GET", "/environments", params=params)
        return [
            EnvironmentRecord(EnvRef(r["project"], r["name"]), r["created_at"], r["latest_revision"], b"", "")
            for r in rows
        ]

    def read_value(
        self, ref: RevisionRef, path: Path = (), *, show_secrets: bool = False
    ) -> tuple[RemoteValue, RemoteEvaluation]:
        params: dict[str, Any] = {"reveal": "true" if show_secrets else "false"}
        if ref.selector is not None:
            params["rev"] = str(ref.selector)
        if path:
            params["path"] = format_path(path)
        ev = RemoteEvaluation.from_json(self._call("GET", self._env_path(ref.env) + "/values", params=params))
        return ev.value, ev

    def open(self, ref: RevisionRef, path: Path = ()) -> tuple[RemoteValue, RemoteEvaluation]:
        body = {"rev": self._rev(ref), "path": list(path)}
        ev = RemoteEvaluation.from_json(self._call("POST", self._env_path(ref.env) + "/open", json=body))
        return ev.value, ev

    def environment_variables(self, ev: RemoteEvaluation) -> tuple[dict[str, Any], tuple[Any, ...]]:
        return ev.variables, ev.variable_diagnostics

    def run_plan(self, ref: RevisionRef, args: list[str]) -> RunData:
        data = self._call("POST", self._env_path(ref.env) + "/run-plan", json={"rev": self._rev(ref), "args": args})
        return RunData(
            variables=dict(data["variables"]),
            files=dict(data["files"]),
            secrets=list(data["secrets"]),
            args=list(data["args"]),
            diagnostics=tuple(decode_diagnostic(d) for d in data.get("diagnostics", [])),
        )

    def definition(self, ref: RevisionRef) -> RemoteRevision:
        params = {"rev": str(ref.selector)} if ref.selector is not None else {}
        data = self._call("GET", self._env_path(ref.env) + "/definition", params=params)
        return RemoteRevision(number=int(data["number"]), definition=str(data["definition"]))

    def definition_text(self, ref: RevisionRef, *, show_secrets: bool = False) -> str:
        params: dict[str, Any] = {"reveal": "true" if show_secrets else "false"}
        if ref.selector is not None:
            params["rev"] = str(ref.selector)
        return str(self._call("GET", self._env_path(ref.env) + "/definition", params=params)["definition"])

    def history(self, env: EnvRef) -> list[HistoryEntry]:
        rows = self._call("GET", self._env_path(env) + "/history")
        return [HistoryEntry(r["number"], r["created_at"], r["author"], tuple(r["tags"])) for r in rows]

    def list_tags(self, env: EnvRef) -> list[TagRecord]:
        rows = self._call("GET", self._env_path(env) + "/tags")
        return [TagRecord(r["name"], r["revision"], r["updated_at"]) for r in rows]

    def diff(self, a: RevisionRef, b: RevisionRef, *, show_secrets: bool = False) -> list[Change]:
        params = {"a": str(a), "b": str(b), "reveal": "true" if show_secrets else "false"}
        rows = self._call("GET", self._env_path(a.env) + "/diff", params=params)

        def value(v: Any, secret: bool) -> Any:
            if not secret:
                return v
            return Secret(v if show_secrets else None)

        return [
            Change(r["path"], r["kind"], value(r["old"], r["old_secret"]), value(r["new"], r["new_secret"]))
            for r in rows
        ]

    # -- writing ------------------------------------------------------------------------------

    def create_environment(self, env: EnvRef, definition: str = "") -> RemoteRevision:
        return RemoteRevision.from_json(self._call("POST", self._env_path(env), json={"definition": definition}))

    def replace_definition(self, env: EnvRef, text: str, *, expected_latest: int | None = None) -> RemoteRevision:
        body = {"definition": text, "expected_latest": expected_latest}
        return RemoteRevision.from_json(self._call("PUT", self._env_path(env) + "/definition", json=body))

    def set_value(
        self, env: EnvRef, path: Path, value: Any, *, secret: bool = False, plaintext_ok: bool = False
    ) -> RemoteRevision:
        body = {"path": list(path), "value": value, "secret": secret, "plaintext_ok": plaintext_ok}
        return RemoteRevision.from_json(self._call("POST", self._env_path(env) + "/set", json=body))

    def remove_value(self, env: EnvRef, path: Path) -> RemoteRevision:
        return RemoteRevision.from_json(self._call("POST", self._env_path(env) + "/remove", json={"path": list(path)}))

    def delete_environment(self, env: EnvRef) -> None:
        self._call("DELETE", self._env_path(env))

    def rollback(self, target: RevisionRef) -> RemoteRevision:
        body = {"rev": self._rev(target)}
        return RemoteRevision.from_json(self._call("POST", self._env_path(target.env) + "/rollback", json=body))

    def tag(self, env: EnvRef, tag: str, revision: int | str | None = None) -> int:
        body = {"rev": None if revision is None else str(revision)}
        return int(self._call("PUT", self._env_path(env) + f"/tags/{quote(tag, safe='')}", json=body)["revision"])

    def untag(self, env: EnvRef, tag: str) -> None:
        self._call("DELETE", self._env_path(env) + f"/tags/{quote(tag, safe='')}")

    def clone(self, src: EnvRef, dst: EnvRef, *, preserve_history: bool = False) -> int:
        body = {"destination": str(dst), "preserve_history": preserve_history}
        return int(self._call("POST", self._env_path(src) + "/clone", json=body)["revisions"])

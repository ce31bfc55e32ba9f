"""Strongroom's own environment routes (``/api/v1/environments``), used by the remote CLI.

Every route calls the same :class:`~strongroom.service.Service` method the local CLI
calls, so roles, auditing and errors are identical. Errors carry Strongroom's error
code, hint and diagnostics so the client raises the very error the local CLI would.
"""

from __future__ import annotations

__all__ = ["router"]

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from strongroom.errors import DefinitionError, StrongroomError
from strongroom.model import EnvRef, RevisionRecord, RevisionRef
from strongroom.server.deps import service as service_dependency
from strongroom.service import Service
from strongroom.wire import encode_diagnostic, encode_value

router = APIRouter(tags=["strongroom"])
ServiceDep = Annotated[Service, Depends(service_dependency)]
F = TypeVar("F", bound=Callable[..., Any])

PathSegments = list[str | int]


def error_response(exc: StrongroomError) -> JSONResponse:
    body: dict[str, Any] = {
        "code": exc.http_status,
        "message": exc.message,
        "error": exc.code,
        "hint": exc.hint,
    }
    if isinstance(exc, DefinitionError):
        body["diagnostics"] = [encode_diagnostic(d) for d in exc.diagnostics]
    return JSONResponse(body, status_code=exc.http_status)


def _native(func: F) -> F:
    """Answer Strongroom errors with code, hint and diagnostics (the ESC error shape is only code and message)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StrongroomError as exc:
            return error_response(exc)

    return wrapper  # type: ignore[return-value]


def _env(project: str, name: str) -> EnvRef:
    return EnvRef.parse(f"{project}/{name}")


def _ref(project: str, name: str, rev: str | None) -> RevisionRef:
    return RevisionRef.parse(f"{project}/{name}" + (f"@{rev}" if rev else ""))


def _revision(rev: RevisionRecord) -> dict[str, Any]:
    return {
        "number": rev.number,
        "created_at": rev.created_at,
        "author": rev.author,
        "warnings": [encode_diagnostic(d) for d in rev.warnings],
    }


def _evaluation(svc: Service, value: Any, ev: Any, *, reveal: bool) -> dict[str, Any]:
    variables, variable_diagnostics = svc.environment_variables(ev)
    return {
        "value": encode_value(value, reveal),
        "diagnostics": [encode_diagnostic(d.to_diagnostic()) for d in ev.diagnostics],
        "variables": {
            k: {
                "secret": not isinstance(v, str),
                "value": v if isinstance(v, str) else (v.reveal() if reveal else None),
            }
            for k, v in variables.items()
        },
        "variable_diagnostics": [encode_diagnostic(d) for d in variable_diagnostics],
    }


def _variable(value: Any, reveal: bool) -> dict[str, Any]:
    if isinstance(value, str):
        return {"secret": False, "value": value}
    return {"secret": True, "value": value.reveal() if reveal and value.revealed else None}


class DefinitionBody(BaseModel):
    definition: str = Field(default="", max_length=1024 * 1024)
    expected_latest: int | None = Field(default=None, ge=1)


class SetBody(BaseModel):
    path: PathSegments = Field(min_length=1)
    value: Any = None
    secret: bool = False
    plaintext_ok: bool = False


class RemoveBody(BaseModel):
    path: PathSegments = Field(min_length=1)


class OpenBody(BaseModel):
    rev: str | None = None
    path: PathSegments = Field(default_factory=list)


class RunBody(BaseModel):
    rev: str | None = None
    args: list[str] = Field(default_factory=list)


class RollbackBody(BaseModel):
    rev: str


class TagBody(BaseModel):
    rev: str | None = None


class CloneBody(BaseModel):
    destination: str
    preserve_history: bool = False


@router.get("/environments")
@_native
def list_environments(
    svc: ServiceDep,
    project: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> Any:
    page = svc.list_environments(project=project, after=EnvRef.parse(after) if after else None, limit=limit)
    return [
        {"project": r.ref.project, "name": r.ref.name, "latest_revision": r.latest_revision, "created_at": r.created_at}
        for r in page
    ]


@router.post("/environments/{project}/{name}", status_code=201)
@_native
def create_environment(svc: ServiceDep, project: str, name: str, body: DefinitionBody) -> Any:
    return _revision(svc.create_environment(_env(project, name), body.definition))


@router.delete("/environments/{project}/{name}", status_code=204)
@_native
def delete_environment(svc: ServiceDep, project: str, name: str) -> None:
    svc.delete_environment(_env(project, name))


@router.get("/environments/{project}/{name}/values")
@_native
def get_values(
    svc: ServiceDep,
    project: str,
    name: str,
    rev: str | None = None,
    path: str | None = None,
    reveal: bool = False,
) -> Any:
    from strongroom.language.paths import parse_path

    keys = parse_path(path) if path else ()
    value, ev = svc.read_value(_ref(project, name, rev), keys, show_secrets=reveal)
    return _evaluation(svc, value, ev, reveal=reveal)


@router.post("/environments/{project}/{name}/open")
@_native
def open_environment(svc: ServiceDep, project: str, name: str, body: OpenBody) -> Any:
    value, ev = svc.open(_ref(project, name, body.rev), tuple(body.path))
    return _evaluation(svc, value, ev, reveal=True)


@router.post("/environments/{project}/{name}/run-plan")
@_native
def run_plan(svc: ServiceDep, project: str, name: str, body: RunBody) -> Any:
    data = svc.run_plan(_ref(project, name, body.rev), body.args)
    return {
        "variables": data.variables,
        "files": data.files,
        "secrets": data.secrets,
        "args": data.args,
        "diagnostics": [encode_diagnostic(d) for d in data.diagnostics],
    }


@router.get("/environments/{project}/{name}/definition")
@_native
def get_definition(svc: ServiceDep, project: str, name: str, rev: str | None = None, reveal: bool = False) -> Any:
    ref = _ref(project, name, rev)
    if reveal:
        return {"definition": svc.definition_text(ref, show_secrets=True), "number": None}
    record = svc.definition(ref)
    return {"definition": record.definition, "number": record.number}


@router.put("/environments/{project}/{name}/definition")
@_native
def put_definition(svc: ServiceDep, project: str, name: str, body: DefinitionBody) -> Any:
    rev = svc.replace_definition(_env(project, name), body.definition, expected_latest=body.expected_latest)
    return _revision(rev)


@router.post("/environments/{project}/{name}/set")
@_native
def set_value(svc: ServiceDep, project: str, name: str, body: SetBody) -> Any:
    rev = svc.set_value(
        _env(project, name), tuple(body.path), body.value, secret=body.secret, plaintext_ok=body.plaintext_ok
    )
    return _revision(rev)


@router.post("/environments/{project}/{name}/remove")
@_native
def remove_value(svc: ServiceDep, project: str, name: str, body: RemoveBody) -> Any:
    return _revision(svc.remove_value(_env(project, name), tuple(body.path)))


@router.get("/environments/{project}/{name}/history")
@_native
def history(svc: ServiceDep, project: str, name: str) -> Any:
    return [
        {"number": e.number, "created_at": e.created_at, "author": e.author, "tags": list(e.tags)}
        for e in svc.history(_env(project, name))
    ]


@router.get("/environments/{project}/{name}/diff")
@_native
def diff(svc: ServiceDep, project: str, name: str, a: str, b: str, reveal: bool = False) -> Any:
    from strongroom.cli.render import unmask

    changes = svc.diff(RevisionRef.parse(a), RevisionRef.parse(b), show_secrets=reveal)
    _ = (project, name)
    return [
        {
            "path": c.path,
            "kind": c.kind,
            "old": unmask(c.old, reveal),
            "new": unmask(c.new, reveal),
            "old_secret": _is_secret(c.old),
            "new_secret": _is_secret(c.new),
        }
        for c in changes
    ]


def _is_secret(value: Any) -> bool:
    from strongroom.model import Secret

    return isinstance(value, Secret)


@router.post("/environments/{project}/{name}/rollback")
@_native
def rollback(svc: ServiceDep, project: str, name: str, body: RollbackBody) -> Any:
    return _revision(svc.rollback(_ref(project, name, body.rev)))


@router.get("/environments/{project}/{name}/tags")
@_native
def list_tags(svc: ServiceDep, project: str, name: str) -> Any:
    return [
        {"name": t.name, "revision": t.revision, "updated_at": t.updated_at} for t in svc.list_tags(_env(project, name))
    ]


@router.put("/environments/{project}/{name}/tags/{tag}")
@_native
def set_tag(svc: ServiceDep, project: str, name: str, tag: str, body: TagBody) -> Any:
    selector: int | str | None = None
    if body.rev is not None:
        selector = RevisionRef.parse(f"{project}/{name}@{body.rev}").selector
    return {"revision": svc.tag(_env(project, name), tag, selector)}


@router.delete("/environments/{project}/{name}/tags/{tag}", status_code=204)
@_native
def delete_tag(svc: ServiceDep, project: str, name: str, tag: str) -> None:
    svc.untag(_env(project, name), tag)


@router.post("/environments/{project}/{name}/clone")
@_native
def clone(svc: ServiceDep, project: str, name: str, body: CloneBody) -> Any:
    count = svc.clone(_env(project, name), EnvRef.parse(body.destination), preserve_history=body.preserve_history)
    return {"revisions": count}

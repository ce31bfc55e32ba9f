"""ESC's two-step open: ``POST .../open`` makes a session, ``GET .../open/{id}`` reads it.

A session (:class:`~strongroom.model.OpenSession`) records only which revision was
opened, by whom and until when; it holds no values. Reading it opens that revision
again through :meth:`Service.open <strongroom.service.Service.open>` with the rights
of whoever reads, so a token revoked or narrowed since the open reads nothing, and
every read is audited as an open. Sessions last ``STRONGROOM_OPEN_SESSION_TTL`` (2h)
or the shorter ``duration`` the client asks for (Go syntax: ``30m``, ``1h30m``).
"""

from __future__ import annotations

__all__ = ["parse_go_duration", "router"]

import re
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from strongroom.errors import InvalidInputError
from strongroom.language.paths import parse_path
from strongroom.model import AuditEvent, RevisionRef
from strongroom.server.config import ServerConfig
from strongroom.server.deps import app_config, service
from strongroom.server.esc_common import check_org, env_ref, path_text, revision_ref
from strongroom.server.esc_models import Environment, EnvironmentDiagnostics, OpenEnvironment, Value
from strongroom.server.esc_values import diagnostics_json, properties_json, value_json
from strongroom.server.routing import ContentTypeRoute
from strongroom.server.state import ServerState, client_address, server_state
from strongroom.service import Service, format_time

ServiceDep = Annotated[Service, Depends(service)]
ConfigDep = Annotated[ServerConfig, Depends(app_config)]
StateDep = Annotated[ServerState, Depends(server_state)]
DurationQuery = Annotated[str | None, Query(max_length=64, description="How long the session lasts, e.g. 2h")]

_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}

router = APIRouter(route_class=ContentTypeRoute)


def parse_go_duration(text: str) -> timedelta:
    """A Go ``time.Duration`` string (``2h``, ``1h30m``, ``90s``, ``1.5h``) as a positive timedelta."""
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidInputError(f"invalid duration {text!r}", hint="use Go's syntax, e.g. 30m, 2h or 1h30m")
    seconds = sum(float(n) * _GO_UNITS[u] for n, u in parts)
    if not seconds >= 1:
        raise InvalidInputError(f"the duration {text!r} is shorter than one second")
    return timedelta(seconds=min(seconds, 366 * 86400.0))


def _open(svc: Service, state: ServerState, client: str, ref: RevisionRef, duration: str | None) -> JSONResponse:
    ttl = state.config.open_session_ttl
    if duration is not None:
        ttl = min(ttl, parse_go_duration(duration))
    session = svc.create_open_session(ref, ttl)
    svc.record(
        AuditEvent(
            at=format_time(state.clock()),
            actor=session.actor,
            action="open.session",
            environment=str(session.env),
            revision=session.revision,
            client=client,
            details=(("expires_at", session.expires_at),),
        )
    )
    # A masked evaluation finds what would stop the session being read (ESC answers 400 with them).
    _rev, evaluation = svc.evaluate(RevisionRef(session.env, session.revision))
    diags = [d.to_diagnostic() for d in evaluation.diagnostics]
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        message = f"{session.env} cannot be opened: {errors[0]}"
        return JSONResponse({"code": 400, "message": message, "diagnostics": diagnostics_json(diags)}, status_code=400)
    return JSONResponse({"id": session.session_id, "diagnostics": {"diagnostics": diagnostics_json(diags)}})


_OPEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": EnvironmentDiagnostics, "description": "The environment has errors and cannot be opened"}
}


@router.post(
    "/environments/{orgName}/{projectName}/{envName}/open", response_model=OpenEnvironment, responses=_OPEN_RESPONSES
)
def open_environment(
    orgName: str,
    projectName: str,
    envName: str,
    request: Request,
    svc: ServiceDep,
    state: StateDep,
    duration: DurationQuery = None,
) -> JSONResponse:
    """Open the newest revision: a session id to read the values with (needs the open right)."""
    check_org(state.config, orgName)
    return _open(svc, state, client_address(request), revision_ref(projectName, envName), duration)


@router.post(
    "/environments/{orgName}/{projectName}/{envName}/versions/{version}/open",
    response_model=OpenEnvironment,
    responses=_OPEN_RESPONSES,
)
def open_environment_at_version(
    orgName: str,
    projectName: str,
    envName: str,
    version: str,
    request: Request,
    svc: ServiceDep,
    state: StateDep,
    duration: DurationQuery = None,
) -> JSONResponse:
    """Open one revision (a number or a tag)."""
    check_org(state.config, orgName)
    return _open(svc, state, client_address(request), revision_ref(projectName, envName, version), duration)


def _read(svc: Service, state: ServerState, project: str, name: str, session_id: str, prop: str | None) -> Any:
    env = env_ref(project, name)
    session = svc.get_open_session(path_text(session_id, "session id"), env)
    path = parse_path(prop) if prop is not None else ()
    value, _evaluation = svc.open(RevisionRef(env, session.revision), path)
    state.metrics.opens.labels(str(env)).inc()
    if prop is not None:
        return value_json(value, reveal=True)
    return {"properties": properties_json(value, reveal=True)}


@router.get("/environments/{orgName}/{projectName}/{envName}/open/{openSessionID}", response_model=Environment)
def read_open_environment(
    orgName: str,
    projectName: str,
    envName: str,
    openSessionID: Annotated[str, Path(max_length=100)],
    svc: ServiceDep,
    state: StateDep,
) -> JSONResponse:
    """The session's values, secrets in plaintext, each with where it is defined."""
    check_org(state.config, orgName)
    return JSONResponse(_read(svc, state, projectName, envName, openSessionID, None))


@router.get("/environments/{orgName}/{projectName}/{envName}/open//{openSessionID}", response_model=Value)
def read_open_environment_property(
    orgName: str,
    projectName: str,
    envName: str,
    openSessionID: Annotated[str, Path(max_length=100)],
    svc: ServiceDep,
    state: StateDep,
    property: Annotated[str, Query(min_length=1, max_length=1000, description="A path, e.g. a.b[0]")],
) -> JSONResponse:
    """One value of the session (``property`` is a path such as ``pulumiConfig["aws:region"]``)."""
    check_org(state.config, orgName)
    return JSONResponse(_read(svc, state, projectName, envName, openSessionID, property))

"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (it can serve requests).

Ready means: the store answers a cheap query (the audit chain's head), the SQLite
file the server opened is still there (a deleted file would take every later write
with it), and the master key loads and is the one the store was made with. Either
probe needs no token and shows no detail beyond which check failed; the reason goes
to the server log.
"""

from __future__ import annotations

__all__ = ["router"]

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from strongroom.server.esc_models import Error
from strongroom.server.state import ServerState, server_state
from strongroom.service import Service
from strongroom.storage.base import default_sqlite_path

_log = logging.getLogger("strongroom.server.health")

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health, openapi_extra={"security": []})
async def healthz() -> dict[str, str]:
    """Liveness: 200 while the process serves HTTP."""
    return {"status": "ok"}


def _check_store(state: ServerState) -> None:
    store = state.require_store()
    store.audit_head()
    if state.owns_store and state.config.store_url is None:
        path = default_sqlite_path(state.config.home)
        if not path.exists():
            raise FileNotFoundError("the SQLite store file is gone")


def _check_key(state: ServerState) -> None:
    Service(state.require_store(), load_keyring=state.keyring, actor="readyz", clock=state.clock).keyring()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Error, "description": "Not ready: the store or the master key is unavailable"}},
    openapi_extra={"security": []},
)
def readyz(state: Annotated[ServerState, Depends(server_state)]) -> Any:
    """Readiness: 200 when the store answers and the master key loads, 503 otherwise."""
    checks: dict[str, str] = {}
    for name, probe in (("store", _check_store), ("key", _check_key)):
        try:
            probe(state)
            checks[name] = "ok"
        except Exception as exc:  # a probe reports failure, whatever its kind
            _log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            checks[name] = "unavailable"
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready", "checks": checks}
    failed = ", ".join(k for k, v in checks.items() if v != "ok")
    return JSONResponse({"code": 503, "message": f"not ready: {failed} unavailable", "checks": checks}, status_code=503)

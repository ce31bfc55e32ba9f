"""Admin routes under ``/api/v1``: API tokens and the audit log (the admin role only).

``/tokens``: list (never a secret or its hash), create (the token is in the reply,
once), revoke. ``/audit``: records oldest first with filters, ``/audit/verify`` checks
the hash chain, and ``POST /audit/hash`` finds who read or wrote a value; the value
travels in the body, never in the URL, so no access log ever holds it.
"""

from __future__ import annotations

__all__ = ["router"]

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from strongroom.access import ROLES, parse_duration
from strongroom.cli.audit import parse_since, record_json
from strongroom.errors import InvalidInputError
from strongroom.model import TokenRecord
from strongroom.server.deps import principal, service
from strongroom.server.esc_models import Text
from strongroom.server.routing import ContentTypeRoute
from strongroom.service import Service

ServiceDep = Annotated[Service, Depends(service)]

router = APIRouter(route_class=ContentTypeRoute, dependencies=[Depends(principal)], tags=["admin"])


class TokenInfo(BaseModel):
    token_id: str
    name: str
    role: str
    scopes: list[str]
    created_at: str
    created_by: str
    expires_at: str | None = None
    revoked_at: str | None = None


class CreatedToken(TokenInfo):
    token: str = Field(description="The token itself: shown this once, never stored")


class CreateToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[Text, Field(min_length=1, max_length=200)]
    role: Annotated[Text, Field(description=f"One of {', '.join(ROLES)}", max_length=20)]
    scopes: Annotated[list[Annotated[Text, Field(max_length=201)]], Field(max_length=100)] = []
    expires: Annotated[Text | None, Field(max_length=20, description="A lifetime such as 90d (none: no expiry)")] = None


class AuditRecordOut(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    outcome: str
    environment: str | None = None
    revision: int | None = None
    client: str | None = None
    details: dict[str, str]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    records: list[AuditRecordOut]
    next_after: int | None = Field(default=None, description="Pass as ?after= for the next page")


class ChainBreakOut(BaseModel):
    seq: int
    reason: str


class AuditVerification(BaseModel):
    checked: int
    intact: bool
    first_break: ChainBreakOut | None = None


class HashQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Annotated[Text, Field(min_length=1, max_length=256 * 1024)]


def _token_json(record: TokenRecord) -> dict[str, Any]:
    return {
        "token_id": record.token_id,
        "name": record.name,
        "role": record.role,
        "scopes": list(record.scopes),
        "created_at": record.created_at,
        "created_by": record.created_by,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
    }


def _lifetime(text: str) -> timedelta:
    try:
        lifetime = parse_duration(text)
    except OverflowError:
        lifetime = timedelta.max
    if lifetime > timedelta(days=3660):
        raise InvalidInputError(f"a token lives at most 3660 days, not {text!r}", hint="for example 90d")
    return lifetime


@router.get("/tokens", response_model=list[TokenInfo])
def list_tokens(svc: ServiceDep) -> JSONResponse:
    return JSONResponse([_token_json(t) for t in svc.list_tokens()])


@router.post("/tokens", status_code=201, response_model=CreatedToken)
def create_token(body: CreateToken, svc: ServiceDep) -> JSONResponse:
    """Make a token; the reply holds it, this once."""
    expires = _lifetime(body.expires) if body.expires else None
    record, token = svc.create_token(body.name, body.role, body.scopes, expires)
    return JSONResponse({**_token_json(record), "token": token}, status_code=201)


@router.delete("/tokens/{token_id}", status_code=204, response_class=Response)
def revoke_token(token_id: Annotated[str, Path(max_length=64, pattern=r"^[a-z2-7]+$")], svc: ServiceDep) -> Response:
    svc.revoke_token(token_id)
    return Response(status_code=204)


@router.get("/audit", response_model=AuditPage)
def list_audit(
    svc: ServiceDep,
    environment: Annotated[Text | None, Query(max_length=201)] = None,
    actor: Annotated[Text | None, Query(max_length=200)] = None,
    action: Annotated[Text | None, Query(max_length=100)] = None,
    since: Annotated[Text | None, Query(max_length=40, description="24h, 7d, or an ISO date/time")] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only records after this sequence number")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    """Audit records oldest first, matching every filter; reading the log is itself recorded."""
    try:
        since_at = parse_since(since) if since else None
    except (OverflowError, ValueError):
        raise InvalidInputError(f"cannot read the time {since!r}", hint="use 24h, 7d or 2026-11-01") from None
    records: list[dict[str, Any]] = []
    more = False
    for rec in svc.audit_log(environment=environment, actor=actor, action=action, since=since_at):
        if rec.seq <= after:
            continue
        if len(records) == limit:
            more = True
            break
        records.append(record_json(rec))
    body: dict[str, Any] = {"records": records, "next_after": records[-1]["seq"] if more else None}
    return JSONResponse(body)


@router.get("/audit/verify", response_model=AuditVerification)
def verify_audit(svc: ServiceDep) -> JSONResponse:
    """Walk the hash chain; name the first edited, deleted or reordered record."""
    checked, broken = svc.verify_audit()
    first = None if broken is None else {"seq": broken.seq, "reason": broken.reason}
    return JSONResponse({"checked": checked, "intact": broken is None, "first_break": first})


@router.post("/audit/hash", response_model=AuditPage)
def find_value(body: HashQuery, svc: ServiceDep) -> JSONResponse:
    """Every record carrying the keyed HMAC of ``value``: who read or wrote it, and when."""
    return JSONResponse({"records": [record_json(r) for r in svc.search_value(body.value)], "next_after": None})

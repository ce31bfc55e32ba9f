"""FastAPI dependencies for routers: the caller, a per-request service, the configuration.

A router declares what it needs::

    @router.get("/things")
    def things(svc: Annotated[Service, Depends(service)]) -> ...

``service`` authenticates first (401/429 before any route code runs), then builds a
:class:`~strongroom.service.Service` for this request only, acting as the token's
principal from the client's address, so the service checks roles and scopes and
audits with the right actor and client.
"""

from __future__ import annotations

__all__ = ["app_config", "principal", "server_state", "service"]

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from strongroom.access import Principal
from strongroom.server.auth import authenticate
from strongroom.server.config import ServerConfig
from strongroom.server.state import client_address, server_state
from strongroom.service import Service


def principal(request: Request) -> Principal:
    """The authenticated caller (401 without a valid token, 429 when the address is locked out)."""
    return authenticate(request)


def service(request: Request, who: Annotated[Principal, Depends(principal)]) -> Service:
    """A :class:`Service` for this request, acting as ``who`` from the client's address."""
    from strongroom.providers import ProviderRegistry

    state = server_state(request)
    return Service(
        state.require_store(),
        load_keyring=state.keyring,
        actor=who.name,
        client=client_address(request),
        clock=state.clock,
        principal=who,
        providers=ProviderRegistry(state.config.environ, allow_environment=state.config.env_provider),
        compiled_cache=state.compiled,
    )


def app_config(request: Request) -> ServerConfig:
    return server_state(request).config

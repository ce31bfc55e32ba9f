"""``create_app``: the Strongroom HTTP server as a FastAPI app, built from a configuration.

Everything the app uses (store, key cache, metrics registry, rate limiter) is made
here and hung on ``app.state``; nothing is module-level. Tests pass a store (and a
key loader) in; otherwise the lifespan opens the store from the configuration as the
CLI does (:class:`~strongroom.cli.context.AppContext`) and closes it on shutdown
(uvicorn runs the shutdown on SIGTERM after in-flight requests finish). The master
key is loaded on first use and kept.

Routes: ``/healthz``, ``/readyz``, ``/metrics``, the ESC-compatible API under
``/api/esc`` (:mod:`strongroom.server.esc`), tokens and audit under ``/api/v1``
(:mod:`strongroom.server.admin`), and Strongroom's own environment routes under
``/api/v1`` when :mod:`strongroom.server.native` is installed, and the web console at ``/``
(:mod:`strongroom.console`).
"""

from __future__ import annotations

__all__ = ["app_from_environ", "create_app"]

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from strongroom.server.auth import FailureLimiter
from strongroom.server.config import ServerConfig
from strongroom.server.errors import install_error_handlers
from strongroom.server.metrics import Metrics
from strongroom.server.middleware import (
    BodyLimitMiddleware,
    CatchAllMiddleware,
    MetricsMiddleware,
    SecurityHeadersMiddleware,
)
from strongroom.server.openapi import install_openapi
from strongroom.server.routes import route_table
from strongroom.server.state import KeyringCache, ServerState

if TYPE_CHECKING:
    from strongroom.crypto.providers import Keyring
    from strongroom.storage.base import Store

_log = logging.getLogger("strongroom.server")
#: How often expired ESC open sessions are swept from the store (seconds).
SESSION_SWEEP_INTERVAL = 300.0
_NATIVE = "strongroom.server.native"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _default_key_loader(config: ServerConfig) -> Callable[[Store], Keyring]:
    def load(store: Store) -> Keyring:
        from strongroom.cli.context import AppContext

        return AppContext(config.context_environ()).key_provider(store).load()

    return load


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("strongroom")
    except PackageNotFoundError:
        return "0"


async def _sweep_sessions(state: ServerState) -> None:
    from strongroom.service import format_time

    while True:
        await asyncio.sleep(SESSION_SWEEP_INTERVAL)
        store = state.store
        if store is None:
            continue
        try:
            await run_in_threadpool(store.delete_expired_sessions, format_time(state.clock()))
        except Exception as exc:  # the sweep retries next time; a failure must not stop the server
            _log.warning("could not sweep expired open sessions: %s", type(exc).__name__)


async def _dispatch_webhooks(state: ServerState) -> None:
    """Deliver webhook events from the audit log, every few seconds, for as long as the server runs.

    Several processes may do this at once: deliveries are leased, so none is sent twice.
    A slow or failing receiver only delays its own deliveries, never a request.
    """
    from strongroom.service import Service
    from strongroom.webhooks import http_post

    post = http_post()
    while True:
        await asyncio.sleep(state.config.webhook_interval.total_seconds())
        store = state.store
        if store is None or not store.list_webhooks():
            continue
        try:
            service = Service(
                store, load_keyring=state.keyring, actor="strongroom-webhooks", client="server", clock=state.clock
            )
            await run_in_threadpool(service.webhook_dispatcher(post).run_once)
        except Exception as exc:  # retried next round; a failure must not stop the server
            _log.warning("webhook delivery round failed: %s", type(exc).__name__)


def _rotate_due_once(state: ServerState) -> None:
    from strongroom.rotation.engine import RotationEngine
    from strongroom.rotation.scheduler import plan_due, rotate_due
    from strongroom.service import Service

    store = state.store
    if store is None:
        return
    service = Service(
        store, load_keyring=state.keyring, actor="strongroom-rotation", client="server", clock=state.clock
    )
    environ = dict(state.config.environ)
    propagators = []
    if environ.get("STRONGROOM_ROTATION_PROPAGATE", "1") != "0":
        from strongroom.rotation.propagate import TierPropagator, TierSettings

        settings = TierSettings.from_environ(environ)
        propagators.append(TierPropagator(service, settings, echo=lambda line: _log.info("%s", line)))
    engine = RotationEngine(service, clock=state.clock, propagators=propagators)
    plan = plan_due(service, engine, None, state.clock())
    results = [*plan.resumed, *(o.result for o in rotate_due(engine, plan.to_rotate) if o.result is not None)]
    for result in results:
        state.metrics.rotations.labels(str(result.env), "scheduled", result.outcome).inc()
    if plan.needs_person:
        _log.warning("%d overdue secret(s) need a person (strongroom rotation status)", len(plan.needs_person))
    if any(r.outcome == "failed" for r in results):
        from strongroom.errors import StrongroomError
        from strongroom.rotation.reminders import notify_failures

        try:
            for problem in notify_failures(service, environ, results):
                _log.warning("the rotation failure e-mail was not sent: %s", problem)
        except StrongroomError as exc:
            _log.warning("rotation failure e-mails are misconfigured: %s", exc.message)
    for propagator in propagators:
        for outcome in propagator.failed + propagator.not_configured:
            _log.warning("rotation re-sync %s: %s; run: %s", outcome.environment, outcome.outcome, outcome.command)


async def _rotate_due(state: ServerState) -> None:
    """Scheduled rotation inside the server: what ``strongroom rotation run-due --yes`` does, periodically.

    Rotations are locked per secret, so several server processes (or a cron job beside
    them) do not rotate the same secret twice.
    """
    interval = state.config.rotation_interval
    if interval is None:
        return
    while True:
        await asyncio.sleep(interval.total_seconds())
        try:
            await run_in_threadpool(_rotate_due_once, state)
        except Exception as exc:  # retried next round; a failure must not stop the server
            _log.warning("scheduled rotation round failed: %s", type(exc).__name__)


def _lifespan(
    state: ServerState, given: Store | None
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if given is None:
            from strongroom.cli.context import AppContext

            store = await run_in_threadpool(AppContext(state.config.context_environ()).open_store)
            state.attach(store, owned=True)
        sweeper = asyncio.create_task(_sweep_sessions(state))
        dispatcher = asyncio.create_task(_dispatch_webhooks(state))
        rotator = asyncio.create_task(_rotate_due(state))
        try:
            yield
        finally:
            for task in (sweeper, dispatcher, rotator):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if state.owns_store:
                opened = state.detach()
                if opened is not None:
                    await run_in_threadpool(opened.close)

    return lifespan


def _include_native(app: FastAPI) -> None:
    """Mount :mod:`strongroom.server.native` under ``/api/v1`` when it is installed and imports."""
    if importlib.util.find_spec(_NATIVE) is None:
        return
    try:
        module = importlib.import_module(_NATIVE)
    except Exception as exc:  # their module failing must not take the rest of the server down
        _log.error("Strongroom's own /api/v1/environments routes are unavailable: %s", type(exc).__name__)
        return
    app.include_router(module.router, prefix="/api/v1")


def create_app(
    config: ServerConfig,
    *,
    store: Store | None = None,
    load_keyring: Callable[[Store], Keyring] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The server app. ``store``: use this store (the caller closes it); otherwise the lifespan opens one."""
    from strongroom.server import admin, esc, health, metrics

    observed = Metrics()
    state = ServerState(
        config=config,
        clock=clock or _utc_now,
        metrics=observed,
        limiter=FailureLimiter(config.auth_failure_limit, config.auth_failure_window.total_seconds()),
        keyring=KeyringCache(load_keyring or _default_key_loader(config)),
    )
    if store is not None:
        state.attach(store, owned=False)
    app = FastAPI(
        title="Strongroom",
        version=_version(),
        description="Strongroom's API: ESC-compatible environments under /api/esc, administration under /api/v1.",
        lifespan=_lifespan(state, store),
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.strongroom = state
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(esc.router, prefix="/api/esc")
    app.include_router(admin.router, prefix="/api/v1")
    _include_native(app)
    from strongroom.console import mount_console  # the web console at /; only the server loads it

    mount_console(app, config)
    install_openapi(app)
    # Added innermost first: the body limit sits next to the app, metrics outermost.
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(CatchAllMiddleware, routes=lambda: route_table(app))
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=observed, routes=lambda: route_table(app))
    return app


def app_from_environ() -> FastAPI:
    """The app for ``uvicorn --factory strongroom.server.app:app_from_environ`` (``strongroom serve``)."""
    return create_app(ServerConfig.from_environ(os.environ))

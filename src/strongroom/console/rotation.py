"""Rotation pages: overdue and due-soon secrets, the guided "rotate now" flow, and rotation history."""

from __future__ import annotations

__all__ = ["rotate_prepare", "rotate_run", "rotation_dashboard", "rotation_history"]

from datetime import timedelta
from typing import TYPE_CHECKING

from starlette.responses import Response

from strongroom.console.web import Ctx
from strongroom.errors import InvalidInputError
from strongroom.model import EnvRef

if TYPE_CHECKING:
    from strongroom.rotation.catalog import CatalogItem

#: "Due soon" on the dashboard means within this many days.
DUE_SOON_DAYS = 30


def rotation_dashboard(ctx: Ctx) -> Response:
    """GET /rotation?all=1: catalogued secrets by state (overdue first), with purpose, owner and users."""
    from strongroom.rotation.catalog import OVERDUE, read_catalog, rotation_status

    show_all = ctx.query.get("all") == "1"
    now = ctx.state.clock()
    items = rotation_status(read_catalog(ctx.service), now, timedelta(days=DUE_SOON_DAYS))
    shown = [s for s in items if show_all or s.state in (OVERDUE, "due soon")]
    return ctx.render(
        "rotation.html",
        items=shown,
        total=len(items),
        overdue=sum(1 for s in items if s.state == OVERDUE),
        show_all=show_all,
        days=DUE_SOON_DAYS,
    )


def _entry(ctx: Ctx, env: EnvRef, path_text: str) -> CatalogItem:
    from strongroom.language import format_path, parse_path
    from strongroom.rotation.catalog import read_catalog

    wanted = format_path(parse_path(path_text))
    for item in read_catalog(ctx.service, env):
        if item.entry.path == wanted:
            return item
    raise InvalidInputError(f"{wanted} in {env} is not in the rotation catalog", hint="pick a secret from the list")


def rotate_prepare(ctx: Ctx) -> Response:
    """POST /rotation/prepare (env, path): the procedure and, for a manual rotator, a field for the new value."""
    env = EnvRef.parse(ctx.field("env"))
    ctx.require("write", env)
    item = _entry(ctx, env, ctx.field("path"))
    return ctx.render("rotate.html", item=item, procedure=item.entry.procedure, rotator=item.entry.rotator_name)


def rotate_run(ctx: Ctx) -> Response:
    """POST /rotation/run (env, path, value): run the engine; show each step's outcome and what to do next."""
    from strongroom.rotation.engine import RotationEngine
    from strongroom.rotation.rotators import RotatorIO

    env = EnvRef.parse(ctx.field("env"))
    ctx.require("write", env)
    item = _entry(ctx, env, ctx.field("path"))
    posted = ctx.form.get("value", "")
    messages: list[str] = []

    def read_secret(_label: str) -> str:
        return posted

    engine = RotationEngine(
        ctx.service, clock=ctx.state.clock, io=RotatorIO(echo=messages.append, read_secret=read_secret)
    )
    result = engine.rotate(env, item.entry.path)
    return ctx.render(
        "rotate_result.html",
        item=item,
        result=result,
        messages=[m for m in messages if m.startswith("Now revoke")],
        status=200 if result.outcome == "done" else 422,
    )


def rotation_history(ctx: Ctx) -> Response:
    """GET /rotation/history?environment=: ``rotation.done`` and ``rotation.failed`` events of readable environments."""
    wanted = ctx.query.get("environment", "").strip()
    env = EnvRef.parse(wanted) if wanted else None
    if env is not None:
        ctx.require("read", env)
    store = ctx.service.store
    records = [
        rec
        for action in ("rotation.done", "rotation.failed")
        for rec in store.list_audit(environment=None if env is None else str(env), action=action)
    ]
    rows = []
    for rec in sorted(records, key=lambda r: r.seq, reverse=True):
        if rec.event.environment is None or not ctx.may("read", rec.event.environment):
            continue
        details = dict(rec.event.details)
        rows.append(
            {
                "at": rec.event.at,
                "environment": rec.event.environment,
                "path": details.get("path", ""),
                "outcome": "done" if rec.event.action == "rotation.done" else "failed",
                "rotator": details.get("rotator", ""),
                "revision": rec.event.revision,
                "detail": f"{details.get('step', '')}: {details['error']}" if details.get("error") else "",
                "actor": rec.event.actor,
            }
        )
    return ctx.render("rotation_history.html", rows=rows[:500], environment=wanted)

"""``strongroom rotation``: due dates (``status``, exit 3 when anything is overdue) and reminders (``remind``)."""

from __future__ import annotations

__all__ = ["EXIT_OVERDUE", "rotation"]

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from strongroom.cli.rotate import make_propagator, propagation_options, report_propagation
from strongroom.errors import UsageError
from strongroom.model import EnvRef

if TYPE_CHECKING:
    from strongroom.rotation.catalog import StatusItem
    from strongroom.rotation.engine import RotationResult
    from strongroom.service import Service

#: ``rotation status`` exits with this when a secret is overdue, so a scheduled CI job fails loudly.
EXIT_OVERDUE = 3


def _service(ctx: click.Context) -> Service:
    from strongroom.cli.app import _app

    return _app(ctx).service()


def _status(ctx: click.Context, env: str | None, within: str) -> list[StatusItem]:
    from strongroom.rotation.catalog import read_catalog, rotation_status
    from strongroom.rotation.schedule import ScheduleError, parse_duration

    try:
        window = parse_duration(within)
    except ScheduleError as exc:
        raise UsageError(str(exc)) from None
    items = read_catalog(_service(ctx), None if env is None else EnvRef.parse(env))
    return rotation_status(items, datetime.now(UTC), window)


@click.group()
def rotation() -> None:
    """Rotation due dates and reminders."""


@rotation.command("status")
@click.argument("env", required=False)
@click.option("--within", default="30d", show_default=True, help="Count as due soon what is due within this.")
@click.option("--all", "show_all", is_flag=True, help="Also list secrets that are not due and those on event.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def rotation_status_cmd(ctx: click.Context, env: str | None, within: str, show_all: bool, fmt: str) -> None:
    """Overdue and due-soon secrets. Exits 3 if any is overdue, 0 otherwise."""
    from strongroom.rotation.catalog import DUE_SOON, OVERDUE

    found = _status(ctx, env, within)
    shown = found if show_all else [s for s in found if s.state in (OVERDUE, DUE_SOON)]
    if fmt == "json":
        out = [
            {
                "environment": s.env,
                "path": s.path,
                "name": s.item.entry.name,
                "state": s.state,
                "schedule": s.item.entry.schedule.display(),
                "lastRotated": s.item.last_rotated.isoformat(),
                "nextDue": None if s.item.next_due is None else s.item.next_due.isoformat(),
                "owner": s.item.entry.owner,
            }
            for s in shown
        ]
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    elif not shown:
        click.echo(f"nothing is overdue or due within {within} ({len(found)} catalogued)")
    else:
        from strongroom.cli.tables import print_table

        print_table(
            ("State", "Environment", "Name", "Schedule", "Last rotated", "Due", "Owner"),
            [
                (
                    s.state,
                    s.env,
                    s.item.entry.name,
                    s.item.entry.schedule.display(),
                    s.item.last_rotated.date().isoformat(),
                    "on event" if s.item.next_due is None else s.item.next_due.date().isoformat(),
                    s.item.entry.owner or "-",
                )
                for s in shown
            ],
        )
    if any(s.state == OVERDUE for s in found):
        ctx.exit(EXIT_OVERDUE)


@rotation.command("remind")
@click.argument("env", required=False)
@click.option("--within", default="14d", show_default=True, help="Remind about what is due within this.")
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send and record nothing.")
@click.pass_context
def rotation_remind(ctx: click.Context, env: str | None, within: str, dry_run: bool) -> None:
    """Send one reminder per due period (e-mail and webhook event); for cron. Re-running sends nothing new."""
    from strongroom.cli.app import _app
    from strongroom.rotation.reminders import send_reminders, smtp_sender, smtp_settings

    found = _status(ctx, env, within)
    service = _service(ctx)
    settings = smtp_settings(_app(ctx).environ, service)
    send_mail = None if settings is None else smtp_sender(settings)
    if settings is None:
        click.echo("e-mail is not configured (STRONGROOM_SMTP_HOST); reminders go to webhooks only", err=True)
    results = send_reminders(service, found, settings=settings, send_mail=send_mail, dry_run=dry_run)
    for r in results:
        due = r.item.item.next_due.date().isoformat() if r.item.item.next_due else "-"
        click.echo(f"{r.outcome}: {r.item.env} {r.item.path} ({r.item.state}, due {due})")
    sent = sum(1 for r in results if r.outcome == "sent")
    click.echo(f"{sent} reminder(s) sent, {len(results) - sent} not", err=True)


@rotation.command("history")
@click.argument("env", required=False)
@click.argument("path", required=False)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def rotation_history(ctx: click.Context, env: str | None, path: str | None, fmt: str) -> None:
    """Past rotations (rotation.done and rotation.failed audit events), oldest first."""
    from strongroom.language.paths import format_path, parse_path

    ref = None if env is None else EnvRef.parse(env)
    wanted = None if path is None else format_path(parse_path(path))
    store = _service(ctx).store
    records = [
        rec
        for action in ("rotation.done", "rotation.failed")
        for rec in store.list_audit(environment=None if ref is None else str(ref), action=action)
    ]
    records.sort(key=lambda r: r.seq)
    rows = []
    for rec in records:
        details = dict(rec.event.details)
        if wanted is not None and details.get("path") != wanted:
            continue
        rows.append(
            {
                "at": rec.event.at,
                "environment": rec.event.environment or "",
                "path": details.get("path", ""),
                "outcome": "done" if rec.event.action == "rotation.done" else "failed",
                "rotator": details.get("rotator", ""),
                "revision": rec.event.revision,
                "step": details.get("step", ""),
                "error": details.get("error", ""),
                "actor": rec.event.actor,
            }
        )
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        click.echo("no rotations recorded")
    else:
        from strongroom.cli.tables import print_table

        print_table(
            ("At", "Environment", "Path", "Outcome", "Rotator", "Revision", "Detail", "Actor"),
            [
                (
                    str(r["at"]),
                    str(r["environment"]),
                    str(r["path"]),
                    str(r["outcome"]),
                    str(r["rotator"]),
                    "-" if r["revision"] is None else str(r["revision"]),
                    f"{r['step']}: {r['error']}" if r["error"] else "-",
                    str(r["actor"]),
                )
                for r in rows
            ],
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _mail_failures(ctx: click.Context, service: Service, results: list[RotationResult]) -> None:
    """E-mail each failed rotation when SMTP is configured (webhooks get ``rotation.failed`` anyway)."""
    from strongroom.cli.app import _app
    from strongroom.rotation.reminders import notify_failures

    for problem in notify_failures(service, _app(ctx).environ, results):
        click.echo(f"warning: the failure e-mail was not sent: {problem}", err=True)


@rotation.command("run-due")
@click.argument("env", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for cron and CronJobs).")
@propagation_options
@click.pass_context
def rotation_run_due(ctx: click.Context, /, env: str | None, yes: bool, **tiers: Any) -> None:
    """Resume interrupted rotations, rotate what is overdue (unattended rotators), retry failures whose backoff is over.

    Exits 1 if any rotation failed, 3 if overdue secrets remain that need a person, 0 otherwise.
    """
    from strongroom.cli.app import _app
    from strongroom.rotation.engine import RotationEngine
    from strongroom.rotation.scheduler import plan_due, rotate_due

    ref = None if env is None else EnvRef.parse(env)
    service = _service(ctx)
    propagator = make_propagator(service, dict(_app(ctx).environ), tiers)
    engine = RotationEngine(service, clock=_now, propagators=() if propagator is None else (propagator,))
    failed = 0

    def report(result: RotationResult, what: str) -> None:
        nonlocal failed
        line = f"{what}: {result.env} {result.path}: {result.outcome}"
        if result.revision is not None:
            line += f" (revision {result.revision})"
        if result.error:
            line += f": {result.error}"
        if result.retry_at is not None:
            line += f"; retry after {result.retry_at.isoformat(timespec='minutes')}"
        click.echo(line)
        failed += result.outcome not in ("done", "nothing")

    plan = plan_due(service, engine, ref, _now())
    for result in plan.resumed:
        report(result, "resumed")
    if plan.to_rotate and not yes:
        listed = ", ".join(f"{e} {p}" for e, p, _why in plan.to_rotate)
        click.confirm(f"Rotate {len(plan.to_rotate)} secret(s): {listed}?", abort=True, err=True)
    outcomes = rotate_due(engine, plan.to_rotate)
    for outcome in outcomes:
        if outcome.result is None:
            click.echo(f"waiting: {outcome.env} {outcome.path}: failed earlier; retry after {outcome.retry_at}")
            failed += 1
            continue
        report(outcome.result, outcome.why)
    if propagator is not None:
        failed += report_propagation(propagator)
    _mail_failures(ctx, service, [*plan.resumed, *(o.result for o in outcomes if o.result is not None)])
    for env_name, path, name in plan.needs_person:
        click.echo(f"needs a person: {env_name} {path} ({name}): strongroom rotate {env_name} '{path}'")
    click.echo(
        f"{len(plan.to_rotate)} rotation(s) attempted, {failed} failed, {len(plan.needs_person)} need a person",
        err=True,
    )
    if failed:
        ctx.exit(1)
    if plan.needs_person:
        ctx.exit(EXIT_OVERDUE)

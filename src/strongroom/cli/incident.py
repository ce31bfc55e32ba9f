"""``strongroom incident``: respond to a compromised secret, and list past incidents.

    strongroom incident ENV PATH [--since 90d] [--yes] [--kubeconfig F] [--context C] [--github-api-url URL]
    strongroom incident ls [--format table|json]

The response marks the secret compromised (audit ``incident.compromised``), rotates it at once
through the rotation engine, re-syncs the Kubernetes and GitHub tiers that carry it (when told
how to reach them; otherwise it prints the commands), prints the blast radius and who opened
the secret since ``--since``, and writes an incident record. It never prints a value.
"""

from __future__ import annotations

__all__ = ["incident"]

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from strongroom.cli.app import _DefaultCommandGroup
from strongroom.errors import StrongroomError, UsageError
from strongroom.model import EnvRef, RevisionRef

if TYPE_CHECKING:
    from strongroom.rotation.incident import BlastRadius


def _now() -> datetime:
    return datetime.now(UTC)


def _since(text: str, now: datetime) -> str:
    """``--since``: a duration back from now (``90d``, ``12h``) or a date / ISO 8601 time."""
    from strongroom.rotation.catalog import parse_date
    from strongroom.rotation.schedule import ScheduleError, parse_duration
    from strongroom.service import format_time

    try:
        return format_time(now - parse_duration(text))
    except ScheduleError:
        pass
    try:
        return format_time(parse_date(text))
    except ValueError:
        raise UsageError(f"--since {text!r} is neither a duration (90d, 12h) nor a date (YYYY-MM-DD)") from None


@click.group(cls=_DefaultCommandGroup, default_command="respond")
def incident() -> None:
    """Respond to a compromised secret (incident ENV PATH), or list incidents (incident ls)."""


def _print_radius(radius: BlastRadius) -> None:
    click.echo("blast radius:")
    click.echo(f"  environment: {radius.environment}")
    for name in radius.importers:
        click.echo(f"  imported by: {name}")
    for k in radius.kubernetes:
        click.echo(
            f"  kubernetes secret: {','.join(k.namespaces)}/{k.name} (keys {', '.join(k.keys)}; from {k.environment})"
        )
    for g in radius.github:
        click.echo(f"  github secret: {g.scope} {g.name} (from {g.environment})")
    for used in radius.used_by:
        click.echo(f"  used by: {used}")
    for problem in radius.problems:
        click.echo(f"  not scanned: {problem}")
    if not (radius.importers or radius.kubernetes or radius.github or radius.used_by):
        click.echo("  nothing else carries it")


@incident.command("respond", hidden=True)
@click.argument("env")
@click.argument("path")
@click.option("--since", default="90d", show_default=True, help="Audit trail from this long ago (90d) or this date.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubernetes: kubeconfig file (re-sync there).")
@click.option("--context", "kube_context", help="Kubernetes: kubeconfig context (re-sync there).")
@click.option("--github-api-url", help="GitHub: API URL; re-sync GitHub (token from GITHUB_TOKEN or the projection).")
@click.pass_context
def respond(
    ctx: click.Context,
    /,
    env: str,
    path: str,
    since: str,
    yes: bool,
    kubeconfig: str | None,
    kube_context: str | None,
    github_api_url: str | None,
) -> None:
    """Mark PATH of ENV compromised, rotate it now, re-sync its tiers, show the blast radius and who opened it."""
    from strongroom.cli.app import _app
    from strongroom.language.paths import format_path, parse_path
    from strongroom.rotation import incident as inc
    from strongroom.rotation.catalog import importers
    from strongroom.rotation.engine import RotationEngine

    app = _app(ctx)
    ref = EnvRef.parse(env)
    path_text = format_path(parse_path(path))
    now = _now()
    since_at = _since(since, now)
    if not yes:
        click.confirm(f"Mark {path_text} of {ref} compromised and rotate it now?", abort=True, err=True)
    service = app.service()
    service.resolve(RevisionRef(ref))  # an unknown environment fails before anything is recorded
    incident_id = inc.new_incident_id(now)
    actor = inc.mark_compromised(service, ref, path_text, incident_id)
    click.echo(f"incident {incident_id}: {path_text} of {ref} marked compromised")

    # Who opened it: read before this command's own decrypt of the value.
    watched = (str(ref), *importers(service).get(str(ref), ()))
    trail = inc.audit_trail(service, watched, path_text, since_at)
    plaintext = inc.current_plaintext(service, ref, parse_path(path_text))
    radius = inc.blast_radius(service, ref, path_text, plaintext)
    del plaintext

    from strongroom.rotation.propagate import TierPropagator, TierSettings

    kube_options = {"kubeconfig": kubeconfig, "kube_context": kube_context} if kubeconfig or kube_context else None
    settings = TierSettings(
        kubernetes=kube_options,
        github=github_api_url is not None,
        github_api_url=github_api_url,
        environ=dict(app.environ),
    )
    propagator = TierPropagator(service, settings, echo=click.echo)
    engine = RotationEngine(service, clock=_now, propagators=[propagator])
    revision: int | None = None
    try:
        result = engine.rotate(ref, path_text)
    except StrongroomError as exc:
        outcome, error = "not rotated", exc.message
        click.echo(f"rotate: not rotated: {exc.message}")
    else:
        for step, what in result.steps:
            click.echo(f"rotate: {step}: {what}")
        outcome, error, revision = result.outcome, result.error or "", result.revision

    propagation = [o.to_json() for o in propagator.outcomes if o.outcome != "not configured"]
    to_resync = [o.command for o in propagator.not_configured]
    if outcome != "done":  # nothing was propagated: every carrier needs a re-sync once the value is replaced
        to_resync = [f"strongroom sync {n} --to kubernetes" for n in sorted({k.environment for k in radius.kubernetes})]
        to_resync += [f"strongroom sync {n} --to github" for n in sorted({g.environment for g in radius.github})]
    for p in propagation:
        click.echo(f"re-synced {p['tier']} from {p['environment']}: {p['outcome']}")
    for command in to_resync:
        click.echo(f"to re-sync: {command}")

    _print_radius(radius)
    click.echo(f"opened since {since_at}:")
    for entry in trail:
        via = f", {entry.client}" if entry.client else ""
        click.echo(f"  {entry.at} {entry.actor} {entry.action} ({entry.environment}{via})")
    if not trail:
        click.echo("  nobody")

    inc.save_incident(
        service,
        {
            "id": incident_id,
            "at": now.isoformat(timespec="seconds"),
            "environment": str(ref),
            "path": path_text,
            "actor": actor,
            "rotation": outcome,
            "error": error,
            "revision": revision,
            "propagation": propagation,
            "toResync": to_resync,
            "blastRadius": radius.to_json(),
            "openedBy": sorted({e.actor for e in trail}),
            "since": since_at,
        },
    )
    click.echo(f"incident {incident_id} recorded (strongroom incident ls)")
    failed_sync = any(p["outcome"] != "ok" for p in propagation)
    if outcome != "done" or failed_sync:
        ctx.exit(1)


@incident.command("ls")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def incident_ls(ctx: click.Context, fmt: str) -> None:
    """Recorded incidents, oldest first."""
    from strongroom.cli.app import _app
    from strongroom.rotation.incident import list_incidents

    found = list_incidents(_app(ctx).service())
    if fmt == "json":
        click.echo(json.dumps(found, indent=2, ensure_ascii=False))
    elif not found:
        click.echo("no incidents recorded")
    else:
        from strongroom.cli.tables import print_table

        print_table(
            ("Id", "At", "Environment", "Path", "Actor", "Rotation"),
            [
                (
                    str(r.get("id", "")),
                    str(r.get("at", "")),
                    str(r.get("environment", "")),
                    str(r.get("path", "")),
                    str(r.get("actor", "")),
                    str(r.get("rotation", "")),
                )
                for r in found
            ],
        )

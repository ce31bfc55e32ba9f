"""``strongroom rotate ENV PATH... [--yes]``: rotate secrets now, printing each step's outcome (never a value)."""

from __future__ import annotations

__all__ = ["make_propagator", "propagation_options", "report_propagation", "rotate"]

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from strongroom.model import EnvRef

if TYPE_CHECKING:
    from strongroom.rotation.propagate import TierPropagator
    from strongroom.service import Service


def _now() -> datetime:
    return datetime.now(UTC)


def propagation_options(func: Any) -> Any:
    """``--kubeconfig``, ``--context``, ``--restart``, ``--github-api-url``, ``--no-github``, ``--no-propagate``."""
    options = [
        click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubernetes: kubeconfig to re-sync with."),
        click.option("--context", "kube_context", help="Kubernetes: kubeconfig context to re-sync with."),
        click.option("--restart", is_flag=True, help="Kubernetes: restart the workloads that use a changed Secret."),
        click.option("--github-api-url", help="GitHub: API URL (GitHub Enterprise)."),
        click.option("--no-github", is_flag=True, help="Do not re-sync GitHub (print the command instead)."),
        click.option("--no-propagate", is_flag=True, help="Re-sync no tier; print the sync commands instead."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_propagator(service: Service, environ: dict[str, str], tiers: dict[str, Any]) -> TierPropagator | None:
    """The tier re-sync for the propagate step, from :func:`propagation_options` (``None``: ``--no-propagate``)."""
    from strongroom.rotation.propagate import TierPropagator, TierSettings

    if tiers.get("no_propagate"):
        return None
    settings = TierSettings.from_environ(
        environ,
        kubeconfig=tiers.get("kubeconfig"),
        context=tiers.get("kube_context"),
        restart=bool(tiers.get("restart")),
        github=not tiers.get("no_github"),
        github_api_url=tiers.get("github_api_url"),
    )
    return TierPropagator(service, settings, echo=click.echo)


def report_propagation(propagator: TierPropagator) -> int:
    """Print what to re-sync by hand; the number of failed re-syncs."""
    for outcome in propagator.failed:
        click.echo(f"re-sync failed: {outcome.tier} from {outcome.environment}; run: {outcome.command}", err=True)
    for outcome in propagator.not_configured:
        click.echo(f"to re-sync: {outcome.command}", err=True)
    return len(propagator.failed)


@click.command()
@click.argument("env")
@click.argument("paths", nargs=-1, required=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@propagation_options
@click.pass_context
def rotate(ctx: click.Context, /, env: str, paths: tuple[str, ...], yes: bool, **tiers: Any) -> None:
    """Rotate the secrets at PATHS of ENV with their catalog's rotator, then re-sync every Kubernetes
    and GitHub target that carries them. Exits 1 if any rotation or re-sync fails."""
    from strongroom.cli.app import _app
    from strongroom.rotation.engine import RotationEngine

    ref = EnvRef.parse(env)
    if not yes:
        click.confirm(f"Rotate {len(paths)} secret(s) of {ref}: {', '.join(paths)}?", abort=True, err=True)
    app = _app(ctx)
    service = app.service()
    propagator = make_propagator(service, dict(app.environ), tiers)
    engine = RotationEngine(service, clock=_now, propagators=() if propagator is None else (propagator,))
    failed = 0
    for path in paths:
        result = engine.rotate(ref, path)
        for step, outcome in result.steps:
            click.echo(f"{result.path}: {step}: {outcome}")
        line = f"{result.path}: {result.outcome}"
        if result.revision is not None:
            line += f" (revision {result.revision})"
        if result.retry_at is not None:
            line += f"; retry after {result.retry_at.isoformat(timespec='minutes')}"
        click.echo(line)
        failed += result.outcome != "done"
    if propagator is not None:
        failed += report_propagation(propagator)
    if failed:
        ctx.exit(1)


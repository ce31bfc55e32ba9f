"""``strongroom rotate ENV PATH... [--yes]``: rotate secrets now, printing each step's outcome (never a value)."""

from __future__ import annotations

__all__ = ["rotate"]

from datetime import UTC, datetime

import click

from strongroom.model import EnvRef


def _now() -> datetime:
    return datetime.now(UTC)


@click.command()
@click.argument("env")
@click.argument("paths", nargs=-1, required=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def rotate(ctx: click.Context, env: str, paths: tuple[str, ...], yes: bool) -> None:
    """Rotate the secrets at PATHS of ENV with their catalog's rotator. Exits 1 if any rotation fails."""
    from strongroom.cli.app import _app
    from strongroom.rotation.engine import RotationEngine

    ref = EnvRef.parse(env)
    if not yes:
        click.confirm(f"Rotate {len(paths)} secret(s) of {ref}: {', '.join(paths)}?", abort=True, err=True)
    engine = RotationEngine(_app(ctx).service(), clock=_now)
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
    if failed:
        ctx.exit(1)

"""``strongroom pulumi``: fill a Pulumi stack file from an environment's ``pulumiConfig``, report drift.

strongroom pulumi sync ENV --stack STACK [--cwd DIR] [--plan] [--prune] [--adopt]
strongroom pulumi status ENV --stack STACK [--cwd DIR]
"""

from __future__ import annotations

__all__ = ["pulumi"]

from typing import Any

import click

from strongroom.cli.app import _Group
from strongroom.model import RevisionRef

_SYMBOL = {"added": "+", "changed": "~", "removed": "-", "conflict": "!", "kept": "=", "unchanged": " "}
_NOTE = {
    "conflict": "exists, not written by Strongroom (--adopt to take it over)",
    "kept": "no longer in the environment (--prune to remove)",
}


@click.group(cls=_Group)
def pulumi() -> None:
    """Feed an environment's pulumiConfig into Pulumi stack files (passphrase secrets provider)."""


def _stack_options(func: Any) -> Any:
    func = click.option("--cwd", default=".", type=click.Path(file_okay=False), help="The Pulumi project folder.")(func)
    return click.option("--stack", "-s", required=True, help="The stack (Pulumi.<STACK>.yaml or .yml).")(func)


@pulumi.command("sync")
@click.argument("name")
@_stack_options
@click.option("--plan", "plan_only", is_flag=True, help="List keys added, changed or removed (never values).")
@click.option("--prune", is_flag=True, help="Remove keys Strongroom wrote that the environment no longer has.")
@click.option("--adopt", is_flag=True, help="Take over existing keys Strongroom did not write.")
@click.pass_context
def sync(ctx: click.Context, /, name: str, stack: str, cwd: str, plan_only: bool, prune: bool, adopt: bool) -> None:
    """Write NAME's pulumiConfig into the stack file; secrets as secure: values."""
    from strongroom.cli.app import _app
    from strongroom.pulumi import sync_pulumi

    result = sync_pulumi(
        _app(ctx).service(), RevisionRef.parse(name), stack, cwd=cwd, plan_only=plan_only, prune=prune, adopt=adopt
    )
    shown = [c for c in result.changes if c.kind != "unchanged"]
    for change in shown:
        note = _NOTE.get(change.kind, change.kind)
        secret = " (secret)" if change.secret else ""
        click.echo(f"{_SYMBOL[change.kind]} {change.key}{secret}: {note}")
    counts = {k: sum(c.kind == k for c in result.changes) for k in ("added", "changed", "removed", "unchanged")}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    if plan_only:
        click.echo(f"plan for {result.stack_file.name}: {summary} (nothing written)")
    elif result.written:
        salt = "; created encryptionsalt" if result.created_salt else ""
        click.echo(f"wrote {result.stack_file.name}: {summary}{salt}")
    else:
        click.echo(f"{result.stack_file.name} is up to date ({summary})")


@pulumi.command("status")
@click.argument("name")
@_stack_options
@click.pass_context
def status(ctx: click.Context, /, name: str, stack: str, cwd: str) -> None:
    """Compare the stack file's managed keys with NAME. Exits 1 on drift."""
    from strongroom.cli.app import _app
    from strongroom.pulumi import pulumi_status

    result = pulumi_status(_app(ctx).service(), RevisionRef.parse(name), stack, cwd=cwd)
    for key, kind in result.drift:
        click.echo(f"drift  {key}: {kind}")
    if result.drifted:
        click.echo(f"{result.stack_file.name}: {len(result.drift)} key(s) drifted, {len(result.in_sync)} in sync")
        raise SystemExit(1)
    click.echo(f"{result.stack_file.name}: in sync ({len(result.in_sync)} keys)")

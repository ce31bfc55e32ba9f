"""``strongroom preview up|down``: Secrets for a pull request's preview namespace ``preview-pr-N``.

strongroom preview up PR_NUMBER --env ENV [--kubeconfig FILE] [--context NAME]
strongroom preview down PR_NUMBER [--kubeconfig FILE] [--context NAME]
"""

from __future__ import annotations

__all__ = ["preview"]

from typing import Any

import click

from strongroom.cli.app import _Group
from strongroom.model import RevisionRef


def _kube_options(func: Any) -> Any:
    func = click.option("--context", "kube_context", help="Kubeconfig context.")(func)
    return click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig file.")(func)


@click.group(cls=_Group)
def preview() -> None:
    """Create or remove a pull request's preview namespace and its Secrets."""


@preview.command("up")
@click.argument("pr", type=click.IntRange(min=1))
@click.option("--env", "env_name", required=True, help="The environment to sync (e.g. aphiria.com/Preview).")
@_kube_options
@click.pass_context
def up(ctx: click.Context, /, pr: int, env_name: str, **options: Any) -> None:
    """Create namespace preview-pr-PR and sync into it every Secret that selects it."""
    from strongroom.cli.app import _app
    from strongroom.tiers.kubernetes import preview_up_from_cli

    code = preview_up_from_cli(_app(ctx).service(), pr, RevisionRef.parse(env_name), options)
    raise SystemExit(code)


@preview.command("down")
@click.argument("pr", type=click.IntRange(min=1))
@_kube_options
@click.pass_context
def down(ctx: click.Context, /, pr: int, **options: Any) -> None:
    """Delete Strongroom's Secrets in preview-pr-PR, and the namespace if Strongroom created it."""
    from strongroom.cli.app import _app
    from strongroom.tiers.kubernetes import preview_down_from_cli

    code = preview_down_from_cli(_app(ctx).service(), pr, options)
    raise SystemExit(code)

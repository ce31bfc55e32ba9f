"""``strongroom sync``: push an environment to a tier, and report drift.

    strongroom sync ENV --to kubernetes|github [--plan] [--prune] [--adopt] [tier options]
    strongroom sync status ENV --to kubernetes|github [tier options]

Each tier module provides ``sync_from_cli(service, ref, options) -> int`` and
``status_from_cli(service, ref, options) -> int`` (the exit code); this module only
parses the command line and dispatches.
"""

from __future__ import annotations

__all__ = ["sync"]

import importlib
from typing import Any

import click

from strongroom.cli.app import _DefaultCommandGroup
from strongroom.errors import UsageError
from strongroom.model import RevisionRef

TIERS = {"kubernetes": "strongroom.tiers.kubernetes", "github": "strongroom.tiers.github"}


def _tier(name: str) -> Any:
    try:
        return importlib.import_module(TIERS[name])
    except ImportError:
        raise UsageError(f"the {name} tier is not available in this installation") from None


def _options(func: Any) -> Any:
    options = [
        click.option("--to", "tier", type=click.Choice(sorted(TIERS)), required=True, help="Where to push."),
        click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubernetes: kubeconfig file."),
        click.option("--context", "kube_context", help="Kubernetes: kubeconfig context."),
        click.option("--api-url", help="GitHub: API URL (GitHub Enterprise).", default=None),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group(cls=_DefaultCommandGroup, default_command="push")
def sync() -> None:
    """Push an environment's projections to Kubernetes or GitHub, or report drift."""


@sync.command("push", hidden=True)
@click.argument("name")
@_options
@click.option("--plan", "plan_only", is_flag=True, help="Show what would change (never values); change nothing.")
@click.option("--prune", is_flag=True, help="Delete owned targets the environment no longer declares.")
@click.option("--adopt", is_flag=True, help="Take over targets of the same name that Strongroom did not create.")
@click.option("--restart", is_flag=True, help="Kubernetes: restart workloads that use a changed Secret.")
@click.option("--namespace-create", is_flag=True, help="Kubernetes: create missing namespaces.")
@click.pass_context
def push(ctx: click.Context, /, name: str, tier: str, **options: Any) -> None:
    """Sync NAME to a tier."""
    from strongroom.cli.app import _app

    code = _tier(tier).sync_from_cli(_app(ctx).service(), RevisionRef.parse(name), options)
    raise SystemExit(code)


@sync.command("status")
@click.argument("name")
@_options
@click.pass_context
def status(ctx: click.Context, /, name: str, tier: str, **options: Any) -> None:
    """Report drift: owned targets edited, deleted or missing. Exits non-zero on drift."""
    from strongroom.cli.app import _app

    code = _tier(tier).status_from_cli(_app(ctx).service(), RevisionRef.parse(name), options)
    raise SystemExit(code)

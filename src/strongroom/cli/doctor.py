"""``strongroom doctor ENV``: run the troubleshooting table's checks; print the cause and fix of each failure."""

from __future__ import annotations

__all__ = ["doctor"]

import json
from typing import TYPE_CHECKING

import click

from strongroom.model import EnvRef

if TYPE_CHECKING:
    from strongroom.cli.context import AppContext


@click.command("doctor")
@click.argument("env")
@click.option("--github-api-url", default="https://api.github.com", show_default=True, help="GitHub REST API base.")
@click.option(
    "--digitalocean-api-url", default="https://api.digitalocean.com", show_default=True, help="DigitalOcean API base."
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Check Kubernetes drift with this kubeconfig.")
@click.option("--context", "kube_context", help="The kubeconfig context to use.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def doctor(
    ctx: click.Context,
    env: str,
    github_api_url: str,
    digitalocean_api_url: str,
    kubeconfig: str | None,
    kube_context: str | None,
    fmt: str,
) -> None:
    """Check ENV's credentials where they are used. Exits 1 if any check fails, 0 otherwise."""
    from strongroom.cli.app import _app, _fail
    from strongroom.errors import StrongroomError

    try:
        _doctor(ctx, _app(ctx), env, github_api_url, digitalocean_api_url, kubeconfig, kube_context, fmt)
    except StrongroomError as exc:  # also when run as a standalone command, outside the root group
        _fail(exc)


def _doctor(
    ctx: click.Context,
    app: AppContext,
    env: str,
    github_api_url: str,
    digitalocean_api_url: str,
    kubeconfig: str | None,
    kube_context: str | None,
    fmt: str,
) -> None:
    from strongroom.rotation.doctor import FAIL, DoctorSettings, record_run, run_doctor

    service = app.service()
    ref = EnvRef.parse(env)
    settings = DoctorSettings(
        github_api_url=github_api_url,
        digitalocean_api_url=digitalocean_api_url,
        kubeconfig=kubeconfig,
        kube_context=kube_context,
        environ=dict(app.environ),
    )
    findings = run_doctor(service, ref, settings)
    record_run(service, ref, findings)
    if fmt == "json":
        click.echo(json.dumps([f.to_json() for f in findings], indent=2, ensure_ascii=False))
    else:
        from strongroom.cli.tables import print_table

        print_table(("Status", "Check", "Detail"), [(f.status, f.check, f.detail) for f in findings])
        for f in findings:
            if f.status == FAIL:
                click.echo(f"\n{f.check}: {f.row.symptom}")
                click.echo(f"  likely cause: {f.row.cause}")
                click.echo(f"  fix: {f.row.fix}")
        failed = sum(1 for f in findings if f.status == FAIL)
        ran = sum(1 for f in findings if f.status != "skipped")
        click.echo(f"\n{ran - failed} passed, {failed} failed, {len(findings) - ran} skipped")
    if any(f.status == FAIL for f in findings):
        ctx.exit(1)

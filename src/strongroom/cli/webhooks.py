"""``strongroom webhook``: register receivers of change events and inspect their deliveries."""

from __future__ import annotations

__all__ = ["webhook"]

from typing import TYPE_CHECKING

import click

from strongroom.errors import UsageError
from strongroom.model import EnvRef

if TYPE_CHECKING:
    from strongroom.service import Service


def _service(ctx: click.Context) -> Service:
    from strongroom.cli.app import _app

    return _app(ctx).service()


@click.group()
def webhook() -> None:
    """Send signed JSON events to URLs when environments change."""


@webhook.command("create")
@click.argument("target", required=False)
@click.argument("url", required=False)
@click.option("--all", "all_envs", is_flag=True, help="Every environment (instead of ENV).")
@click.option("--secret", help="Signing secret (16+ characters); or --secret-file.")
@click.option(
    "--secret-file", type=click.Path(dir_okay=False, exists=True), help="Read the signing secret from a file."
)
@click.option("--events", "events", multiple=True, help="Event names (repeat); default: all.")
@click.pass_context
def webhook_create(
    ctx: click.Context,
    target: str | None,
    url: str | None,
    all_envs: bool,
    secret: str | None,
    secret_file: str | None,
    events: tuple[str, ...],
) -> None:
    """Create a webhook: `webhook create ENV URL --secret S` or `webhook create --all URL --secret S`."""
    if all_envs and url is None:
        target, url = None, target
    if url is None or (target is None and not all_envs) or (target is not None and all_envs):
        raise UsageError("give ENV and URL, or --all and URL")
    if (secret is None) == (secret_file is None):
        raise UsageError("give --secret or --secret-file")
    if secret_file is not None:
        with open(secret_file, encoding="utf-8") as fh:
            secret = fh.read().strip()
    assert secret is not None
    env = None if target is None else EnvRef.parse(target)
    hook = _service(ctx).create_webhook(env, url, secret, list(events) or None)
    click.echo(
        f"Webhook {hook.webhook_id} created for {hook.environment or 'every environment'}: {', '.join(hook.events)}."
    )


@webhook.command("ls")
@click.pass_context
def webhook_ls(ctx: click.Context) -> None:
    """List webhooks."""
    from strongroom.cli.tables import print_table, short_time

    rows = [
        (h.webhook_id, h.environment or "*", h.url, ", ".join(h.events), short_time(h.created_at))
        for h in _service(ctx).list_webhooks()
    ]
    print_table(("id", "environment", "url", "events", "created"), rows)


@webhook.command("rm")
@click.argument("webhook_id")
@click.pass_context
def webhook_rm(ctx: click.Context, webhook_id: str) -> None:
    """Delete a webhook and its delivery log."""
    _service(ctx).delete_webhook(webhook_id)
    click.echo(f"Webhook {webhook_id} deleted.", err=True)


@webhook.command("deliveries")
@click.argument("webhook_id", required=False)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.pass_context
def webhook_deliveries(ctx: click.Context, webhook_id: str | None, limit: int) -> None:
    """The delivery log, newest first: status, attempts, last HTTP status or error."""
    from strongroom.cli.tables import print_table, short_time

    rows = [
        (
            str(d.delivery_id),
            d.webhook_id,
            d.event,
            d.status,
            str(d.attempts),
            "" if d.last_status is None else str(d.last_status),
            d.last_error or "",
            short_time(d.updated_at),
        )
        for d in _service(ctx).list_deliveries(webhook_id, limit)
    ]
    print_table(("id", "webhook", "event", "status", "attempts", "http", "error", "updated"), rows)


@webhook.command("dispatch")
@click.pass_context
def webhook_dispatch(ctx: click.Context) -> None:
    """Queue and deliver what is due now (`strongroom serve` does this continuously)."""
    queued, delivered = _service(ctx).webhook_dispatcher().run_once()
    click.echo(f"Queued {queued} event(s); delivered {delivered}.")

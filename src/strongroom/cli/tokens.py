"""``strongroom token``: create, list and revoke API tokens for the server."""

from __future__ import annotations

__all__ = ["token"]

from typing import TYPE_CHECKING

import click

from strongroom.access import ROLES, parse_duration

if TYPE_CHECKING:
    from strongroom.service import Service


def _service(ctx: click.Context) -> Service:
    from strongroom.cli.app import _app

    return _app(ctx).service()


@click.group()
def token() -> None:
    """Manage API tokens (shown once, stored only as a hash)."""


@token.command("create")
@click.option("--name", required=True, help="Who or what uses the token, e.g. ci-deploy.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the token may do.")
@click.option("--scope", "scopes", multiple=True, metavar="PROJECT/ENV-GLOB", help="Limit to environments (repeat).")
@click.option("--expires", help="Lifetime, e.g. 90d (default: no expiry).")
@click.pass_context
def token_create(ctx: click.Context, name: str, role: str, scopes: tuple[str, ...], expires: str | None) -> None:
    """Create a token and print it once."""
    record, secret = _service(ctx).create_token(name, role, scopes, parse_duration(expires) if expires else None)
    click.echo(secret)
    expiry = f", expires {record.expires_at}" if record.expires_at else ""
    click.echo(
        f"Token {record.token_id} ({record.name}, {record.role}{expiry}) created. "
        "Copy it now: it is not stored and cannot be shown again.",
        err=True,
    )


@token.command("ls")
@click.pass_context
def token_ls(ctx: click.Context) -> None:
    """List tokens (never their secrets)."""
    from strongroom.cli.tables import print_table, short_time

    rows = [
        (
            t.token_id,
            t.name,
            t.role,
            ", ".join(t.scopes) or "*",
            short_time(t.created_at),
            short_time(t.expires_at) if t.expires_at else "never",
            "revoked" if t.revoked_at else "active",
        )
        for t in _service(ctx).list_tokens()
    ]
    print_table(("id", "name", "role", "scopes", "created", "expires", "state"), rows)


@token.command("revoke")
@click.argument("token_id")
@click.pass_context
def token_revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke a token by its id (from `token ls`)."""
    _service(ctx).revoke_token(token_id)
    click.echo(f"Token {token_id} revoked.", err=True)

"""``strongroom serve``: run the HTTP server (the ESC-compatible API, admin routes, probes, metrics).

FastAPI and uvicorn are imported only when the command runs, so ``strongroom --help``
and every other command stay as quick to start as before.
"""

from __future__ import annotations

__all__ = ["serve"]

import os

import click

#: The uvicorn factory every worker process calls to build its app.
APP_FACTORY = "strongroom.server.app:app_from_environ"


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for all).")
@click.option("--port", default=8800, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes (each keeps its own rate-limit counts).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--proxy-headers",
    is_flag=True,
    help="Trust X-Forwarded-For/-Proto from --forwarded-allow-ips (behind a reverse proxy).",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies whose X-Forwarded-* headers are trusted (with --proxy-headers).",
)
def serve(host: str, port: int, workers: int, log_level: str, proxy_headers: bool, forwarded_allow_ips: str) -> None:
    """Serve Strongroom's HTTP API (ESC-compatible under /api/esc) until SIGTERM or Ctrl-C.

    \b
    Configuration comes from the environment (see docs/server.md):
      STRONGROOM_HOME, STRONGROOM_STORE      the store, as for every command
      STRONGROOM_MASTER_KEY, ..._PASSPHRASE  the master key, as for every command
      STRONGROOM_METRICS_TOKEN[_FILE]        bearer token for /metrics (off when unset)
      STRONGROOM_ORGANIZATION                the ESC organisation name (default)
      STRONGROOM_MAX_BODY_BYTES              request body limit (2 MiB)
      STRONGROOM_OPEN_SESSION_TTL            longest ESC open session (2h)
      STRONGROOM_AUTH_FAILURE_LIMIT/_WINDOW  failed logins per address before 429 (10 per 1m)
    """
    import uvicorn

    from strongroom.server.config import ServerConfig

    config = ServerConfig.from_environ(os.environ)  # a bad setting fails here, before any worker starts
    click.echo(
        f"Strongroom serving on {_url(host, port)} (organisation {config.organization!r}, "
        f"{workers} worker{'s' if workers > 1 else ''}); ESC clients use this URL as their backend."
    )
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=30,
    )

"""The console's routes and settings."""

from __future__ import annotations

__all__ = ["console_router", "console_settings"]

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from strongroom.console import audit, auth_pages, environments, history, rotation, tiers
from strongroom.console.session import parse_session_key
from strongroom.console.web import Console, page, public_page
from strongroom.errors import InvalidInputError

DEFAULT_IDLE_TIMEOUT = timedelta(minutes=30)
DEFAULT_MAX_AGE = timedelta(hours=12)
_STATIC = Path(__file__).resolve().parent / "static"
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".txt": "text/plain"}


def _duration(environ: Mapping[str, str], name: str, default: timedelta) -> timedelta:
    from strongroom.access import parse_duration

    text = environ.get(name) or ""
    if not text.strip():
        return default
    try:
        return parse_duration(text)
    except InvalidInputError:
        raise InvalidInputError(f"{name}={text!r} is not a duration", hint="use for example 30m, 2h or 1d") from None


def console_settings(environ: Mapping[str, str]) -> Console | None:
    """The console's settings from the server's environment; ``None`` when ``STRONGROOM_CONSOLE=off``."""
    if (environ.get("STRONGROOM_CONSOLE") or "").strip().lower() in ("off", "0", "false", "no"):
        return None
    key_text = environ.get("STRONGROOM_CONSOLE_SESSION_KEY") or None
    key_file = environ.get("STRONGROOM_CONSOLE_SESSION_KEY_FILE") or None
    if key_text is not None and key_file is not None:
        raise InvalidInputError("set STRONGROOM_CONSOLE_SESSION_KEY or STRONGROOM_CONSOLE_SESSION_KEY_FILE, not both")
    if key_file is not None:
        try:
            key_text = Path(key_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"cannot read STRONGROOM_CONSOLE_SESSION_KEY_FILE ({type(exc).__name__})") from None
    return Console(
        idle_timeout=_duration(environ, "STRONGROOM_CONSOLE_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT),
        max_age=_duration(environ, "STRONGROOM_CONSOLE_MAX_AGE", DEFAULT_MAX_AGE),
        explicit_key=None if key_text is None else parse_session_key(key_text),
    )


def _static_files() -> dict[str, tuple[bytes, str]]:
    return {
        p.name: (p.read_bytes(), _STATIC_TYPES.get(p.suffix, "application/octet-stream"))
        for p in _STATIC.iterdir()
        if p.is_file()
    }


async def _home(request: Request) -> Response:
    """``/``: browsers go to the console; an API client (no ``text/html`` in ``Accept``) gets the API's 404."""
    if "text/html" not in request.headers.get("accept", ""):
        from strongroom.server.errors import error_response

        return error_response(404, "not found: no such route")
    return RedirectResponse("/environments", status_code=303)


def console_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    files = _static_files()

    async def static(request: Request) -> Response:
        found = files.get(str(request.path_params["name"]))
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            found[0],
            media_type=found[1],
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    env = "/environments/{project}/{name}"
    routes: list[tuple[str, object, list[str]]] = [
        ("/", _home, ["GET"]),
        ("/signin", public_page(auth_pages.signin_form), ["GET"]),
        ("/signin", public_page(auth_pages.signin_submit), ["POST"]),
        ("/signout", page(auth_pages.signout), ["POST"]),
        ("/environments", page(environments.environment_list), ["GET"]),
        (env, page(environments.environment_view), ["GET"]),
        (f"{env}/reveal", page(environments.reveal), ["POST"]),
        (f"{env}/mark-secret", page(environments.mark_secret), ["POST"]),
        (f"{env}/edit", page(environments.edit_form), ["GET"]),
        (f"{env}/edit", page(environments.edit_submit), ["POST"]),
        (f"{env}/history", page(history.history_view), ["GET"]),
        (f"{env}/diff", page(history.diff_view), ["GET"]),
        (f"{env}/rollback", page(history.rollback), ["POST"]),
        (f"{env}/tags", page(history.tag_set), ["POST"]),
        (f"{env}/tags/delete", page(history.tag_delete), ["POST"]),
        (f"{env}/tiers", page(tiers.tiers_view), ["GET"]),
        (f"{env}/tiers/{{tier}}/{{action}}", page(tiers.tier_action), ["POST"]),
        ("/tiers", page(tiers.tiers_overview), ["GET"]),
        ("/rotation", page(rotation.rotation_dashboard), ["GET"]),
        ("/rotation/prepare", page(rotation.rotate_prepare), ["POST"]),
        ("/rotation/run", page(rotation.rotate_run), ["POST"]),
        ("/rotation/history", page(rotation.rotation_history), ["GET"]),
        ("/audit", page(audit.audit_log), ["GET"]),
        ("/audit/verify", page(audit.audit_verify), ["GET"]),
        ("/static/console/{name}", static, ["GET"]),
    ]
    for path, endpoint, methods in routes:
        router.add_api_route(path, endpoint, methods=methods, include_in_schema=False)  # type: ignore[arg-type]
    return router

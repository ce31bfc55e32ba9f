"""Signing in and out of the console with a Strongroom token."""

from __future__ import annotations

__all__ = ["signin_form", "signin_submit", "signout"]

import hmac

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from strongroom.console.session import COOKIE_NAME, Session
from strongroom.console.web import (
    Console,
    Ctx,
    authenticate_token,
    clear_session_cookie,
    html_response,
    safe_next,
    set_session_cookie,
)
from strongroom.errors import AuthenticationError
from strongroom.server.state import server_state


def _render_signin(
    request: Request,
    console: Console,
    session: Session,
    *,
    status: int = 200,
    message: str | None = None,
    next_path: str = "/environments",
) -> Response:
    html = (
        console.templates()
        .get_template("signin.html")
        .render(
            principal=None,
            csrf=session.csrf,
            path=request.url.path,
            may=lambda *_a: False,
            message=message,
            next_path=next_path,
            expired=request.query_params.get("expired") == "1",
        )
    )
    response = html_response(html, status)
    set_session_cookie(request, response, console.codec(server_state(request)), session)
    return response


def _pre_session(request: Request, console: Console) -> Session:
    """The cookie's session if it holds one (signed in or not), else a new empty one (its CSRF token only)."""
    state = server_state(request)
    found = console.codec(state).open(request.cookies.get(COOKIE_NAME))
    return found if found is not None else Session.new("", state.clock().timestamp())


def signin_form(request: Request, console: Console, _form: dict[str, str]) -> Response:
    session = _pre_session(request, console)
    if session.token:
        session = Session.new("", server_state(request).clock().timestamp())
    return _render_signin(request, console, session, next_path=safe_next(request.query_params.get("next")))


def signin_submit(request: Request, console: Console, form: dict[str, str]) -> Response:
    state = server_state(request)
    session = _pre_session(request, console)
    next_path = safe_next(form.get("next"))
    if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
        fresh = Session.new("", state.clock().timestamp())
        return _render_signin(
            request,
            console,
            fresh,
            status=403,
            next_path=next_path,
            message="The sign-in form expired. Please paste your token again.",
        )
    token = form.get("token", "").strip()
    try:
        principal = authenticate_token(request, token)
    except AuthenticationError:
        return _render_signin(
            request,
            console,
            session,
            status=401,
            next_path=next_path,
            message="That token is invalid, expired or revoked.",
        )
    from strongroom.server.state import client_address
    from strongroom.service import Service

    svc = Service(
        state.require_store(),
        load_keyring=state.keyring,
        actor=principal.name,
        client=client_address(request),
        clock=state.clock,
        principal=principal,
    )
    svc.record(svc.event("console.signin", details=[("token_id", principal.token_id or "")]))
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(request, response, console.codec(state), Session.new(token, state.clock().timestamp()))
    return response


def signout(ctx: Ctx) -> Response:
    ctx.service.record(ctx.service.event("console.signout"))
    response = RedirectResponse("/signin", status_code=303)
    clear_session_cookie(ctx.request, response)
    return response

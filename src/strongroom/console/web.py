"""The console's request plumbing: the signed-in person, their service, forms, CSRF, rendering and errors.

Every console handler is ``def handler(ctx: Ctx) -> Response`` wrapped by :func:`page`,
which (in a worker thread, since the service blocks) opens the session cookie, refuses it
when idle or too old, authenticates its token exactly as the API does (same rate limiter,
same ``auth.failed`` audit), checks the CSRF token of every POST, builds a
:class:`~strongroom.service.Service` acting as the token's principal, and turns errors
into one clear HTML page (never a traceback). Responses carry the console's CSP.
"""

from __future__ import annotations

__all__ = ["CSP", "Console", "Ctx", "page", "public_page"]

import hmac
import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from strongroom.console.session import COOKIE_NAME, Session, SessionCodec, derive_session_key
from strongroom.errors import (
    AuthenticationError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    StrongroomError,
)
from strongroom.server.state import ServerState, client_address, server_state

if TYPE_CHECKING:
    from jinja2 import Environment

    from strongroom.access import Principal
    from strongroom.service import Service

_log = logging.getLogger("strongroom.console")
#: No inline script or style anywhere: everything comes from /static/console/.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
_HERE = Path(__file__).resolve().parent
FRAGMENT_HEADER = "x-console-fragment"


@dataclass
class Console:
    """What the console's routes share (on ``app.state.strongroom_console``)."""

    idle_timeout: timedelta
    max_age: timedelta
    explicit_key: bytes | None = None
    _codec: SessionCodec | None = field(default=None, repr=False)
    _templates: Environment | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def codec(self, state: ServerState) -> SessionCodec:
        with self._lock:
            if self._codec is None:
                key = self.explicit_key
                if key is None:
                    from strongroom.service import Service

                    checker = Service(state.require_store(), load_keyring=state.keyring, actor="console")
                    key = derive_session_key(checker.audit_key())
                self._codec = SessionCodec(key)
            return self._codec

    def templates(self) -> Environment:
        with self._lock:
            if self._templates is None:
                from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

                env = Environment(
                    loader=FileSystemLoader(str(_HERE / "templates")),
                    autoescape=select_autoescape(default=True, default_for_string=True),
                    undefined=StrictUndefined,
                    trim_blocks=True,
                    lstrip_blocks=True,
                )
                env.filters["q"] = lambda text: quote(str(text), safe="")
                self._templates = env
            return self._templates


def console_of(request: Request) -> Console:
    found: Console = request.app.state.strongroom_console
    return found


class _Redirect(Exception):
    def __init__(self, location: str, *, clear: bool = False) -> None:
        super().__init__(location)
        self.location = location
        self.clear = clear


class FormError(InvalidInputError):
    """A form field that is missing or wrong (400 with one clear message)."""


def _epoch(state: ServerState) -> float:
    return state.clock().timestamp()


def _with_token(request: Request, token: str) -> Request:
    """The request as the API would see it with ``Authorization: Bearer <token>`` (for server.auth)."""
    headers = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"authorization"]
    headers.append((b"authorization", f"Bearer {token}".encode("latin-1", "replace")))
    return Request({**request.scope, "headers": headers})


def authenticate_token(request: Request, token: str) -> Principal:
    """The API's authentication (limiter, metrics, audit of failures) for a token typed or kept in a cookie."""
    from strongroom.server.auth import authenticate

    return authenticate(_with_token(request, token))


def safe_next(target: str | None) -> str:
    """A local path to go to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/environments"
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Ctx:
    """One console request: who asks, their service, the form and query, and rendering helpers."""

    request: Request
    console: Console
    state: ServerState
    session: Session
    principal: Principal | None
    form: dict[str, str]
    query: Mapping[str, str]
    _service: Service | None = None

    @property
    def service(self) -> Service:
        if self._service is None:
            from strongroom.providers import ProviderRegistry
            from strongroom.service import Service

            assert self.principal is not None
            self._service = Service(
                self.state.require_store(),
                load_keyring=self.state.keyring,
                actor=self.principal.name,
                client=client_address(self.request),
                clock=self.state.clock,
                principal=self.principal,
                providers=ProviderRegistry(self.state.config.environ, allow_environment=self.state.config.env_provider),
                compiled_cache=self.state.compiled,
            )
        return self._service

    def may(self, permission: str, env: object | None = None) -> bool:
        return self.principal is not None and self.principal.may(permission, None if env is None else str(env))

    def require(self, permission: str, env: object | None = None) -> None:
        """Refuse (audited, as the service refuses) unless the principal has ``permission`` on ``env``.

        Decided on the name alone, so the answer never tells whether the environment exists.
        """
        if self.may(permission, env):
            return
        from strongroom.model import EnvRef

        assert self.principal is not None
        target = env if isinstance(env, EnvRef) else None
        self.service.record(self.service.event(f"denied.{permission}", env=target, outcome="denied"))
        raise PermissionDeniedError(
            f"token {self.principal.name!r} ({self.principal.role}) may not {permission} "
            + (f"environment {env}" if env is not None else "this"),
            hint="ask an admin for a token with the right role and scope",
        )

    def field(self, name: str, *, required: bool = True, default: str = "") -> str:
        value = self.form.get(name)
        if value is None or (required and not value.strip()):
            if required:
                raise FormError(f"the form is missing {name!r}", hint="go back and fill it in")
            return default
        return value

    def render(
        self, template: str, *, status: int = 200, no_store_reason: str | None = None, **values: Any
    ) -> Response:
        html = (
            self.console.templates()
            .get_template(template)
            .render(
                principal=self.principal,
                csrf=self.session.csrf,
                path=self.request.url.path,
                may=self.may,
                **values,
            )
        )
        return html_response(html, status)

    def fragment_wanted(self) -> bool:
        return self.request.headers.get(FRAGMENT_HEADER) == "1"


def html_response(html: str, status: int = 200) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    # Same-origin form posts then carry a real Origin (with no-referrer Chromium sends "Origin: null").
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def set_session_cookie(request: Request, response: Response, codec: SessionCodec, session: Session) -> None:
    response.set_cookie(
        COOKIE_NAME,
        codec.seal(session),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE_NAME, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def _status_of(exc: StrongroomError) -> int:
    if isinstance(exc, PermissionDeniedError):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    return int(getattr(exc, "http_status", 400) or 400)


def error_page(
    console: Console,
    request: Request,
    status: int,
    message: str,
    hint: str | None = None,
    principal: Principal | None = None,
    csrf: str = "",
) -> Response:
    html = (
        console.templates()
        .get_template("error.html")
        .render(
            principal=principal,
            csrf=csrf,
            path=request.url.path,
            may=lambda *_a: False,
            status=status,
            message=message,
            hint=hint,
        )
    )
    return html_response(html, status)


async def _read_form(request: Request) -> dict[str, str]:
    if request.method != "POST":
        return {}
    raw = await request.body()
    kind = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if raw and kind != "application/x-www-form-urlencoded":
        raise FormError("the console takes forms only (application/x-www-form-urlencoded)")
    body = raw.decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True, max_num_fields=100))


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":  # no claim either way: the CSRF token and SameSite=Strict decide
        return True
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", "") and parts.scheme == request.url.scheme


def _signed_in(request: Request, console: Console, state: ServerState, signin_path: str) -> tuple[Session, Principal]:
    codec = console.codec(state)
    session = codec.open(request.cookies.get(COOKIE_NAME))
    here = request.url.path + (f"?{request.url.query}" if request.url.query and request.method == "GET" else "")
    goto = f"{signin_path}?next={quote(here, safe='')}"
    if session is None or not session.token:
        raise _Redirect(goto)
    now = _epoch(state)
    if (
        now - session.last_seen > console.idle_timeout.total_seconds()
        or now - session.started > console.max_age.total_seconds()
    ):
        raise _Redirect(goto + "&expired=1", clear=True)
    try:
        principal = authenticate_token(request, session.token)
    except AuthenticationError:
        raise _Redirect(goto + "&expired=1", clear=True) from None
    return session, principal


def _handle(request: Request, console: Console, form: dict[str, str], handler: Callable[..., Response]) -> Response:
    state = server_state(request)
    session: Session | None = None
    principal: Principal | None = None
    try:
        session, principal = _signed_in(request, console, state, "/signin")
        if request.method == "POST" and not (
            _same_origin(request) and hmac.compare_digest(form.get("csrf", ""), session.csrf)
        ):
            return error_page(
                console,
                request,
                403,
                "This form has expired or did not come from this console.",
                "Reload the page and try again.",
                principal,
                session.csrf,
            )
        ctx = Ctx(request, console, state, session, principal, form, request.query_params)
        response = handler(ctx, **request.path_params)
        if not any(k == b"set-cookie" and v.startswith(COOKIE_NAME.encode() + b"=") for k, v in response.raw_headers):
            set_session_cookie(request, response, console.codec(state), session.touched(_epoch(state)))
        return response
    except _Redirect as redirect:
        response = RedirectResponse(redirect.location, status_code=303)
        if redirect.clear:
            clear_session_cookie(request, response)
        return response
    except StrongroomError as exc:
        csrf = session.csrf if session is not None else ""
        response = error_page(console, request, _status_of(exc), exc.message, exc.hint, principal, csrf)
        retry = getattr(exc, "retry_after", None)
        if retry is not None:
            response.headers["Retry-After"] = str(retry)
        return response
    except UnicodeEncodeError:
        return error_page(
            console, request, 400, "The text holds characters that are not valid Unicode; nothing was saved."
        )
    except Exception as exc:  # the edge: one page, the log gets the type and place (never the text)
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        _log.error(
            "console: internal error %s at %s answering %s %s",
            type(exc).__name__,
            where,
            request.method,
            request.url.path,
        )
        return error_page(
            console,
            request,
            500,
            "Something went wrong on the server.",
            "The server log has the error's type and place; try again.",
        )


def page(handler: Callable[..., Response]) -> Callable[[Request], Any]:
    """Wrap a signed-in console handler (GET or POST) into an async endpoint."""

    async def endpoint(request: Request) -> Response:
        console = console_of(request)
        try:
            form = await _read_form(request)
        except FormError as exc:
            return error_page(console, request, 400, exc.message)
        return await run_in_threadpool(_handle, request, console, form, handler)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def public_page(handler: Callable[[Request, Console, dict[str, str]], Response]) -> Callable[[Request], Any]:
    """Wrap a handler that needs no session (sign-in)."""

    async def endpoint(request: Request) -> Response:
        console = console_of(request)
        try:
            form = await _read_form(request)
        except FormError as exc:
            return error_page(console, request, 400, exc.message)

        def run() -> Response:
            try:
                return handler(request, console, form)
            except StrongroomError as exc:
                response = error_page(console, request, _status_of(exc), exc.message, exc.hint)
                retry = getattr(exc, "retry_after", None)
                if retry is not None:
                    response.headers["Retry-After"] = str(retry)
                return response

        return await run_in_threadpool(run)

    endpoint.__name__ = handler.__name__
    return endpoint

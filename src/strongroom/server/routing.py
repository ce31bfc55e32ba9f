"""Request bodies: the content types a route takes (415 otherwise) and YAML bodies.

:class:`ContentTypeRoute` is the route class of every Strongroom router. A route
with a JSON body model takes ``application/json``; a route that declares its body
in ``openapi_extra`` (YAML routes, see :data:`YAML_BODY`) takes what it declares.
A request that carries a body of another type is refused with 415 before the body
is read, so nothing is parsed, let alone changed.
"""

from __future__ import annotations

__all__ = ["YAML_BODY", "YAML_MEDIA_TYPES", "ContentTypeRoute", "yaml_body"]

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from strongroom.errors import InvalidInputError

#: The media types a YAML body may be sent as (``application/x-yaml`` is what ESC clients send).
YAML_MEDIA_TYPES = frozenset({"application/x-yaml", "application/yaml", "text/yaml", "text/x-yaml", "text/plain"})
#: ``openapi_extra`` for a route whose body is a YAML definition.
YAML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/x-yaml": {"schema": {"type": "string"}}},
    }
}


def _media_type(request: Request) -> str | None:
    value = request.headers.get("content-type")
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower() or None


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


class ContentTypeRoute(APIRoute):
    """An :class:`APIRoute` that answers 415 to a body of a content type it does not take."""

    def _accepted(self) -> frozenset[str]:
        extra = (self.openapi_extra or {}).get("requestBody", {}).get("content")
        if extra:
            declared = frozenset(str(k).lower() for k in extra)
            return declared | YAML_MEDIA_TYPES if "application/x-yaml" in declared else declared
        if self.body_field is not None:
            return frozenset({"application/json"})
        return frozenset()

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        accepted = self._accepted()
        if not accepted:
            return handler
        wanted = " or ".join(sorted(accepted)) if len(accepted) < 3 else "application/x-yaml"

        async def checked(request: Request) -> Response:
            if _has_body(request):
                media = _media_type(request)
                json_like = media is not None and media.startswith("application/") and media.endswith("+json")
                if media not in accepted and not (json_like and "application/json" in accepted):
                    raise HTTPException(
                        415, detail=f"unsupported Content-Type {media or '(none)'}: send the body as {wanted}"
                    )
            return await handler(request)

        return checked


async def yaml_body(request: Request) -> str:
    """The request body as text: a YAML definition, which must be UTF-8 (415 for another content type)."""
    if _media_type(request) not in YAML_MEDIA_TYPES and _has_body(request):
        raise HTTPException(415, detail="send the definition as application/x-yaml")
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"the body is not valid UTF-8 (bad byte at offset {exc.start})", hint="send the YAML as UTF-8"
        ) from None

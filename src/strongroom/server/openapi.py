"""The served OpenAPI document (``/openapi.json``), made to say what the server really answers.

FastAPI documents a 422 for request validation; Strongroom answers 400. Every
operation gets the error responses it can give, each an ``Error`` (``{code, message}``),
and the token scheme (``Authorization: token <T>`` or ``Bearer <T>``) is declared.
"""

from __future__ import annotations

__all__ = ["install_openapi"]

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from strongroom.server.esc_models import Error

_ERRORS = {
    400: "Bad request: invalid input, name, path or definition",
    401: "No valid token",
    403: "The token's role or scope does not allow this",
    404: "Not found",
    409: "Conflict: it exists already, or changed since it was read",
    413: "The request body is too large",
    415: "The request body has an unsupported Content-Type",
    429: "Too many failed authentications from this address",
    500: "Internal error",
    503: "The store or the master key is unavailable",
}
_PUBLIC = {400, 404, 413, 415, 500, 503}
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _error_schema_ref(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "Error" not in components:
        error_schema = Error.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in error_schema.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components["Error"] = error_schema
    return {"$ref": "#/components/schemas/Error"}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    ref = _error_schema_ref(schema)
    schema["components"]["securitySchemes"] = {
        "token": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`token <TOKEN>` (as ESC clients send it) or `Bearer <TOKEN>`",
        }
    }
    schema["security"] = [{"token": []}]
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    for item in schema.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            public = operation.get("security") == []
            for status, description in _ERRORS.items():
                if public and status not in _PUBLIC:
                    continue
                entry = responses.setdefault(str(status), {"description": description})
                if "content" not in entry:
                    entry["content"] = {"application/json": {"schema": ref}}
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi`'s document (built once, on first request)."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if "schema" not in cache:
            cache["schema"] = build_openapi(app)
        return cache["schema"]  # type: ignore[no-any-return]

    app.openapi = openapi  # type: ignore[method-assign]

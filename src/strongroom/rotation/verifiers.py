"""Verifiers: does a secret's value still work where it is used?

A verifier is one method, ``verify(value, spec) -> VerifyResult``: ``value`` is the plaintext
secret, ``spec`` says where to try it (a URL, a database, a mail server, a registry). The
result's ``detail`` is for a person to read and never contains the value. Used by
``strongroom doctor`` and by the rotation engine's test step.
"""

from __future__ import annotations

__all__ = [
    "HttpBearerVerifier",
    "PostgresLoginVerifier",
    "RegistryLoginVerifier",
    "SmtpLoginVerifier",
    "Verifier",
    "VerifyResult",
    "builtin_verifiers",
]

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Whether the value worked, and a line saying what was tried (never the value)."""

    ok: bool
    detail: str


class Verifier(Protocol):
    def verify(self, value: str, spec: Mapping[str, Any]) -> VerifyResult: ...


def _scrub(text: str, value: str) -> str:
    """``text`` with every occurrence of ``value`` masked: errors may echo their input."""
    if value:
        text = text.replace(value, "[secret]")
    return text


def _result(ok: bool, detail: str, value: str) -> VerifyResult:
    return VerifyResult(ok, _scrub(detail, value))


class HttpBearerVerifier:
    """``GET spec["url"]`` with ``Authorization: Bearer <value>``; ok on any 2xx."""

    def __init__(self, *, transport: httpx.BaseTransport | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._transport = transport
        self._timeout = timeout

    def verify(self, value: str, spec: Mapping[str, Any]) -> VerifyResult:
        url = str(spec["url"])
        try:
            with httpx.Client(transport=self._transport, timeout=self._timeout) as client:
                response = client.get(url, headers={"Authorization": f"Bearer {value}"})
        except httpx.HTTPError as exc:
            return _result(False, f"GET {url} failed: {type(exc).__name__}", value)
        if response.is_success:
            return _result(True, f"GET {url} answered {response.status_code}", value)
        return _result(False, f"GET {url} answered {response.status_code} {response.reason_phrase}", value)


class PostgresLoginVerifier:
    """Log in to PostgreSQL as ``spec["user"]`` with the value as password (``host``, ``port``, ``dbname``).

    Only proves something where the server asks for a password: under ``trust`` auth any
    password is accepted, and only a missing role or database fails.
    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._timeout = timeout

    def verify(self, value: str, spec: Mapping[str, Any]) -> VerifyResult:
        import psycopg

        user = str(spec["user"])
        host = str(spec.get("host", "127.0.0.1"))
        port = int(spec.get("port", 5432))
        dbname = str(spec.get("dbname", user))
        where = f"{user}@{host}:{port}/{dbname}"
        try:
            with psycopg.connect(
                host=host,
                port=port,
                dbname=dbname,
                user=user,
                password=value,
                connect_timeout=max(1, int(self._timeout)),
            ) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            return _result(False, f"login as {where} failed: {first}", value)
        return _result(True, f"logged in as {where}", value)


class SmtpLoginVerifier:
    """Connect to ``spec["host"]:spec["port"]``, EHLO, STARTTLS if ``starttls``, and log in as ``user``.

    Without a ``user`` it only checks that the server answers EHLO.
    """

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._timeout = timeout

    def verify(self, value: str, spec: Mapping[str, Any]) -> VerifyResult:
        import smtplib

        host = str(spec["host"])
        port = int(spec.get("port", 587))
        user = spec.get("user")
        where = f"{host}:{port}"
        try:
            with smtplib.SMTP(host, port, timeout=self._timeout) as smtp:
                smtp.ehlo()
                if spec.get("starttls", False):
                    smtp.starttls()
                    smtp.ehlo()
                if not user:
                    return _result(True, f"{where} answered EHLO (no login tried: no user)", value)
                smtp.login(str(user), value)
        except smtplib.SMTPAuthenticationError as exc:
            return _result(False, f"{where} rejected the login of {user} ({exc.smtp_code})", value)
        except (smtplib.SMTPException, OSError) as exc:
            return _result(False, f"{where}: {type(exc).__name__}", value)
        return _result(True, f"logged in to {where} as {user}", value)


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` as ``("bearer", {"realm": ..., "service": ...})``."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, raw = part.strip().partition("=")
        if sep:
            params[key.strip().lower()] = raw.strip().strip('"')
    return scheme.lower(), params


class RegistryLoginVerifier:
    """A Docker registry v2 login: ``GET https://REGISTRY/v2/`` with basic auth ``username`` / value.

    A ``401`` with ``WWW-Authenticate: Bearer realm=...`` is answered as ``docker login``
    does: fetch a token from the realm (basic auth, ``service`` passed on), then retry with
    ``Authorization: Bearer <token>``. ``registry`` may be a host (``ghcr.io``) or a base URL.
    """

    def __init__(self, *, transport: httpx.BaseTransport | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._transport = transport
        self._timeout = timeout

    def verify(self, value: str, spec: Mapping[str, Any]) -> VerifyResult:
        registry = str(spec["registry"]).rstrip("/")
        base = registry if "://" in registry else f"https://{registry}"
        url = f"{base}/v2/"
        user = str(spec["username"])
        basic = "Basic " + base64.b64encode(f"{user}:{value}".encode()).decode("ascii")
        try:
            with httpx.Client(transport=self._transport, timeout=self._timeout) as client:
                first = client.get(url, headers={"Authorization": basic})
                if first.is_success:
                    return _result(True, f"{registry} accepted {user}", value)
                scheme, params = _challenge(first.headers.get("www-authenticate", ""))
                if first.status_code != 401 or scheme != "bearer" or "realm" not in params:
                    return _result(False, f"GET {url} answered {first.status_code}", value)
                query = {k: v for k, v in params.items() if k in ("service", "scope")}
                token_response = client.get(params["realm"], params=query, headers={"Authorization": basic})
                if not token_response.is_success:
                    return _result(
                        False, f"the token service of {registry} refused {user} ({token_response.status_code})", value
                    )
                try:
                    body = token_response.json()
                    token = body.get("token") or body.get("access_token")
                except ValueError:
                    token = None
                if not isinstance(token, str) or not token:
                    return _result(False, f"the token service of {registry} returned no token", value)
                second = client.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            return _result(False, f"{registry} could not be reached: {type(exc).__name__}", value)
        if second.is_success:
            return _result(True, f"{registry} accepted {user} (token login)", value)
        return _result(False, f"{registry} refused the token issued for {user} ({second.status_code})", value)


def builtin_verifiers(
    *, transport: httpx.BaseTransport | None = None, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Verifier]:
    """The built-in verifiers by the name a ``verify:`` spec uses (made on each call: no registry at import)."""
    return {
        "http": HttpBearerVerifier(transport=transport, timeout=timeout),
        "postgresql": PostgresLoginVerifier(timeout=timeout),
        "smtp": SmtpLoginVerifier(timeout=timeout),
        "registry": RegistryLoginVerifier(transport=transport, timeout=timeout),
    }

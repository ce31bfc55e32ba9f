"""The one hierarchy of Strongroom's errors.

Every error knows the exit code the CLI gives it and the HTTP status the server
maps it to. Messages are written for the person reading them: what is wrong,
then (``hint``) what to do. A secret value never goes into a message.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExistsError",
    "AuthenticationError",
    "ConflictError",
    "DecryptionError",
    "DefinitionError",
    "Diagnostic",
    "EnvironmentNotFoundError",
    "InvalidInputError",
    "InvalidNameError",
    "KeyUnavailableError",
    "NotFoundError",
    "PathError",
    "PermissionDeniedError",
    "RevisionNotFoundError",
    "StoreUnavailableError",
    "StrongroomError",
    "TagNotFoundError",
    "TooLargeError",
    "UsageError",
]

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a definition, with where it is."""

    message: str
    severity: str = "error"  # "error" or "warning"
    environment: str | None = None
    line: int | None = None
    column: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.environment:
            where = self.environment
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.path:
            where += f" ({self.path})" if where else self.path
        return f"{where}: {self.message}" if where else self.message


class StrongroomError(Exception):
    """Base class. ``exit_code`` is for the CLI, ``http_status`` and ``code`` for the server."""

    exit_code: int = 1
    http_status: int = 500
    code: str = "internal"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class UsageError(StrongroomError):
    """The command line itself is wrong (exit 2)."""

    exit_code = 2
    http_status = 400
    code = "usage"


class InvalidInputError(StrongroomError):
    """Input that cannot be accepted as given."""

    http_status = 400
    code = "invalid_input"


class InvalidNameError(InvalidInputError):
    code = "invalid_name"


class PathError(InvalidInputError):
    """A value path that cannot be parsed, or that runs through a scalar."""

    code = "invalid_path"


class TooLargeError(InvalidInputError):
    http_status = 413
    code = "too_large"


class DefinitionError(InvalidInputError):
    """A definition with errors; ``diagnostics`` lists every one of them."""

    code = "invalid_definition"

    def __init__(
        self,
        message: str,
        *,
        diagnostics: tuple[Diagnostic, ...] = (),
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.diagnostics = diagnostics


class AuthenticationError(StrongroomError):
    """No valid credentials (HTTP 401)."""

    http_status = 401
    code = "unauthenticated"


class PermissionDeniedError(StrongroomError):
    """Valid credentials without the right (HTTP 403). Says nothing about whether the target exists."""

    http_status = 403
    code = "forbidden"


class NotFoundError(StrongroomError):
    http_status = 404
    code = "not_found"


class EnvironmentNotFoundError(NotFoundError):
    pass


class RevisionNotFoundError(NotFoundError):
    pass


class TagNotFoundError(NotFoundError):
    pass


class ConflictError(StrongroomError):
    """A write based on a revision that is no longer the newest."""

    http_status = 409
    code = "conflict"


class AlreadyExistsError(ConflictError):
    code = "already_exists"


class KeyUnavailableError(StrongroomError):
    """The master key is missing, unreadable, or not the one this store was made with."""

    http_status = 503
    code = "key_unavailable"


class DecryptionError(StrongroomError):
    """Opaque on purpose: says nothing about why a ciphertext did not decrypt."""

    http_status = 500
    code = "decryption_failed"

    def __init__(self, message: str = "a ciphertext could not be decrypted", *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


class StoreUnavailableError(StrongroomError):
    """The storage backend cannot be reached or is not initialised."""

    http_status = 503
    code = "store_unavailable"

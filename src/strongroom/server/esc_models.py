"""The JSON shapes of the ESC-compatible API, as pydantic models.

Request models validate what clients send; response models document (in
``/openapi.json``) what routes return, matching ``pulumi_esc_sdk.models``. Routes
build their responses as plain dicts and omit optional fields that are unset, as
ESC does. :data:`Text` is a string that is valid Unicode without NUL characters,
so nothing a client sends can fail later in the store's encoding.
"""

from __future__ import annotations

__all__ = [
    "MAX_REVISION",
    "CheckEnvironment",
    "CloneEnvironment",
    "CreateEnvironment",
    "CreateEnvironmentRevisionTag",
    "CreateEnvironmentTag",
    "Environment",
    "EnvironmentDiagnostic",
    "EnvironmentDiagnostics",
    "EnvironmentRevision",
    "EnvironmentRevisionTag",
    "EnvironmentRevisionTags",
    "EnvironmentTag",
    "Error",
    "ListEnvironmentTags",
    "OpenEnvironment",
    "OrgEnvironment",
    "OrgEnvironments",
    "Range",
    "Revision",
    "Text",
    "UpdateEnvironmentRevisionTag",
    "UpdateEnvironmentTag",
    "Value",
]

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

#: The largest revision number a request may name (the stores keep 32-bit revision numbers safe).
MAX_REVISION = 2**31 - 1


def _valid_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


Text = Annotated[str, AfterValidator(_valid_text)]
Revision = Annotated[int, Field(ge=1, le=MAX_REVISION)]


class _Open(BaseModel):
    """Responses may carry more fields than documented (ESC's clients ignore unknown ones)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# -- errors and diagnostics ---------------------------------------------------------------------


class Pos(_Open):
    line: int
    column: int
    byte: int


class Range(_Open):
    environment: str
    begin: Pos
    end: Pos


class EnvironmentDiagnostic(_Open):
    summary: str
    path: str | None = None
    range: Range | None = None
    severity: str | None = None


class EnvironmentDiagnostics(_Open):
    diagnostics: list[EnvironmentDiagnostic] | None = None


class Error(_Open):
    """ESC's error: ``code`` is the HTTP status; a definition error adds ``diagnostics``."""

    code: int
    message: str
    diagnostics: list[EnvironmentDiagnostic] | None = None


# -- values -------------------------------------------------------------------------------------


class Trace(_Open):
    def_: Range | None = Field(default=None, alias="def")
    base: Value | None = None


class Value(_Open):
    value: Any
    secret: bool | None = None
    unknown: bool | None = None
    trace: Trace


class Environment(_Open):
    properties: dict[str, Value] | None = None


class CheckEnvironment(_Open):
    properties: dict[str, Value] | None = None
    diagnostics: list[EnvironmentDiagnostic] | None = None


class OpenEnvironment(_Open):
    id: str
    diagnostics: EnvironmentDiagnostics | None = None


# -- environments and revisions -----------------------------------------------------------------


class OrgEnvironment(_Open):
    organization: str | None = None
    project: str
    name: str
    created: str
    modified: str


class OrgEnvironments(_Open):
    environments: list[OrgEnvironment] | None = None
    next_token: str | None = Field(default=None, alias="nextToken")


class CreateEnvironment(_Closed):
    project: Annotated[Text, Field(min_length=1, max_length=100)]
    name: Annotated[Text, Field(min_length=1, max_length=100)]


class CloneEnvironment(_Closed):
    project: Annotated[Text, Field(min_length=1, max_length=100)]
    name: Annotated[Text, Field(min_length=1, max_length=100)]
    preserve_access: bool | None = Field(default=None, alias="preserveAccess")
    preserve_environment_tags: bool | None = Field(default=None, alias="preserveEnvironmentTags")
    preserve_history: bool | None = Field(default=None, alias="preserveHistory")
    preserve_revision_tags: bool | None = Field(default=None, alias="preserveRevisionTags")


class EnvironmentRevision(_Open):
    number: int
    created: str | None = None
    creator_login: str | None = Field(default=None, alias="creatorLogin")
    creator_name: str | None = Field(default=None, alias="creatorName")
    tags: list[str] | None = None


class EnvironmentRevisionTag(_Open):
    revision: int
    name: str
    created: str | None = None
    modified: str | None = None
    editor_login: str | None = Field(default=None, alias="editorLogin")
    editor_name: str | None = Field(default=None, alias="editorName")


class EnvironmentRevisionTags(_Open):
    tags: list[EnvironmentRevisionTag] | None = None
    next_token: str | None = Field(default=None, alias="nextToken")


class CreateEnvironmentRevisionTag(_Closed):
    name: Annotated[Text, Field(min_length=1, max_length=100)]
    revision: Revision


class UpdateEnvironmentRevisionTag(_Closed):
    revision: Revision


# -- environment tags ---------------------------------------------------------------------------


class EnvironmentTag(_Open):
    name: str
    value: str | None = None
    created: str
    modified: str
    editor_login: str = Field(alias="editorLogin")
    editor_name: str = Field(alias="editorName")


class ListEnvironmentTags(_Open):
    tags: dict[str, EnvironmentTag]
    next_token: str = Field(alias="nextToken")


class CreateEnvironmentTag(_Closed):
    name: Annotated[Text, Field(min_length=1, max_length=100)]
    value: Annotated[Text, Field(max_length=4096)]


class CurrentTag(_Closed):
    value: Text


class NewTag(_Closed):
    name: Annotated[Text, Field(max_length=100)]
    value: Annotated[Text, Field(max_length=4096)]


class UpdateEnvironmentTag(_Closed):
    current_tag: CurrentTag = Field(alias="currentTag")
    new_tag: NewTag = Field(alias="newTag")


Trace.model_rebuild()

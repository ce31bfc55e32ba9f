"""Revision tags (``versions/tags``: names for revisions, ``ENV@stable``) and environment
tags (``tags``: key/value labels such as ``team: platform``), as ESC's API has them.

Revision tags list ESC's implicit ``latest`` (the newest revision), which cannot be set
or removed. Creating a revision tag that exists is 409 (moving one is ``PATCH``).
Renaming an environment tag (``PATCH`` with another ``newTag.name``) creates the new
tag and then removes the old one: two audited changes, not one atomic one.
"""

from __future__ import annotations

__all__ = ["router"]

from collections.abc import Callable, Iterable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from strongroom.errors import AlreadyExistsError, ConflictError, TagNotFoundError
from strongroom.model import LATEST, EnvRef, EnvTagRecord, RevisionRef, TagRecord
from strongroom.server.config import ServerConfig
from strongroom.server.deps import app_config, service
from strongroom.server.esc_common import check_org, env_ref, path_text
from strongroom.server.esc_models import (
    CreateEnvironmentRevisionTag,
    CreateEnvironmentTag,
    EnvironmentRevisionTag,
    EnvironmentRevisionTags,
    EnvironmentTag,
    ListEnvironmentTags,
    UpdateEnvironmentRevisionTag,
    UpdateEnvironmentTag,
)
from strongroom.server.routing import ContentTypeRoute
from strongroom.service import Service

ServiceDep = Annotated[Service, Depends(service)]
ConfigDep = Annotated[ServerConfig, Depends(app_config)]
AfterQuery = Annotated[str | None, Query(max_length=200)]
CountQuery = Annotated[int | None, Query(ge=1, le=1000)]

router = APIRouter(route_class=ContentTypeRoute)

_REV_TAGS = "/environments/{orgName}/{projectName}/{envName}/versions/tags"
_ENV_TAGS = "/environments/{orgName}/{projectName}/{envName}/tags"


# -- revision tags ------------------------------------------------------------------------------


def _revision_tag(name: str, revision: int, at: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "revision": revision}
    if at is not None:
        out.update(created=at, modified=at)
    return out


def _revision_tags(svc: Service, env: EnvRef) -> list[dict[str, Any]]:
    """Every revision tag of ``env`` by name, ``latest`` included (the read is audited once)."""
    tags: list[TagRecord] = svc.list_tags(env)
    newest = svc.resolve(RevisionRef(env))  # the caller may read env: list_tags checked it
    found = [_revision_tag(t.name, t.revision, t.updated_at) for t in tags]
    found.append(_revision_tag(LATEST, newest.number, newest.created_at))
    return sorted(found, key=lambda t: str(t["name"]))


_T = TypeVar("_T")


def _page(
    items: Iterable[_T], name: Callable[[_T], str], after: str | None, count: int | None
) -> tuple[list[_T], str | None]:
    """One page of name-ordered tags: those after ``after``, at most ``count`` (default 100), and the
    name to continue after (``None`` on the last page)."""
    rest = [item for item in items if after is None or name(item) > after]
    limit = count or 100
    page = rest[:limit]
    return page, name(page[-1]) if len(rest) > limit else None


def _find_revision_tag(svc: Service, env: EnvRef, name: str) -> dict[str, Any]:
    for tag in _revision_tags(svc, env):
        if tag["name"] == name:
            return tag
    raise TagNotFoundError(f"{env} has no tag {name!r}", hint=f"list the tags with GET .../{env}/versions/tags")


@router.get(_REV_TAGS, response_model=EnvironmentRevisionTags)
def list_revision_tags(
    orgName: str,
    projectName: str,
    envName: str,
    svc: ServiceDep,
    config: ConfigDep,
    after: AfterQuery = None,
    count: CountQuery = None,
) -> JSONResponse:
    """Revision tags in name order, those after ``after``, at most ``count`` (default 100)."""
    check_org(config, orgName)
    page, next_token = _page(_revision_tags(svc, env_ref(projectName, envName)), lambda t: str(t["name"]), after, count)
    body: dict[str, Any] = {"tags": page}
    if next_token is not None:
        body["nextToken"] = next_token
    return JSONResponse(body)


@router.post(_REV_TAGS, status_code=204, response_class=Response)
def create_revision_tag(
    orgName: str,
    projectName: str,
    envName: str,
    body: CreateEnvironmentRevisionTag,
    svc: ServiceDep,
    config: ConfigDep,
) -> Response:
    """Name a revision; 409 if the tag exists."""
    check_org(config, orgName)
    env = env_ref(projectName, envName)
    if any(t.name == body.name for t in svc.list_tags(env)):
        raise AlreadyExistsError(f"{env} already has a tag {body.name!r}", hint="move it with PATCH instead")
    svc.tag(env, body.name, body.revision)
    return Response(status_code=204)


@router.get(_REV_TAGS + "/{tagName}", response_model=EnvironmentRevisionTag)
def get_revision_tag(
    orgName: str,
    projectName: str,
    envName: str,
    tagName: str,
    svc: ServiceDep,
    config: ConfigDep,
) -> JSONResponse:
    check_org(config, orgName)
    return JSONResponse(_find_revision_tag(svc, env_ref(projectName, envName), tagName))


@router.patch(_REV_TAGS + "/{tagName}", status_code=204, response_class=Response)
def update_revision_tag(
    orgName: str,
    projectName: str,
    envName: str,
    tagName: str,
    body: UpdateEnvironmentRevisionTag,
    svc: ServiceDep,
    config: ConfigDep,
) -> Response:
    """Move an existing tag to another revision (404 if there is no such tag)."""
    check_org(config, orgName)
    env = env_ref(projectName, envName)
    if not any(t.name == tagName for t in svc.list_tags(env)):
        raise TagNotFoundError(f"{env} has no tag {tagName!r}", hint="create it with POST .../versions/tags")
    svc.tag(env, tagName, body.revision)
    return Response(status_code=204)


@router.delete(_REV_TAGS + "/{tagName}", status_code=204, response_class=Response)
def delete_revision_tag(
    orgName: str,
    projectName: str,
    envName: str,
    tagName: str,
    svc: ServiceDep,
    config: ConfigDep,
) -> Response:
    check_org(config, orgName)
    svc.untag(env_ref(projectName, envName), tagName)
    return Response(status_code=204)


# -- environment tags ---------------------------------------------------------------------------


def _env_tag(tag: EnvTagRecord) -> dict[str, Any]:
    return {
        "name": tag.name,
        "value": tag.value,
        "created": tag.created_at,
        "modified": tag.updated_at,
        "editorLogin": tag.updated_by,
        "editorName": tag.updated_by,
    }


def _find_env_tag(svc: Service, env: EnvRef, name: str) -> EnvTagRecord:
    for tag in svc.list_env_tags(env):
        if tag.name == name:
            return tag
    raise TagNotFoundError(f"{env} has no environment tag {name!r}")


@router.get(_ENV_TAGS, response_model=ListEnvironmentTags)
def list_environment_tags(
    orgName: str,
    projectName: str,
    envName: str,
    svc: ServiceDep,
    config: ConfigDep,
    after: AfterQuery = None,
    count: CountQuery = None,
) -> JSONResponse:
    """Environment tags by name; ``nextToken`` is empty on the last page."""
    check_org(config, orgName)
    page, next_token = _page(svc.list_env_tags(env_ref(projectName, envName)), lambda t: t.name, after, count)
    return JSONResponse({"tags": {t.name: _env_tag(t) for t in page}, "nextToken": next_token or ""})


@router.post(_ENV_TAGS, response_model=EnvironmentTag)
def create_environment_tag(
    orgName: str,
    projectName: str,
    envName: str,
    body: CreateEnvironmentTag,
    svc: ServiceDep,
    config: ConfigDep,
) -> JSONResponse:
    """Add a tag; 409 if it exists."""
    check_org(config, orgName)
    tag = svc.set_env_tag(env_ref(projectName, envName), body.name, body.value, create_only=True)
    return JSONResponse(_env_tag(tag))


@router.get(_ENV_TAGS + "/{tagName:path}", response_model=EnvironmentTag)
def get_environment_tag(
    orgName: str,
    projectName: str,
    envName: str,
    tagName: str,
    svc: ServiceDep,
    config: ConfigDep,
) -> JSONResponse:
    check_org(config, orgName)
    return JSONResponse(_env_tag(_find_env_tag(svc, env_ref(projectName, envName), path_text(tagName, "tag name"))))


@router.patch(_ENV_TAGS + "/{tagName:path}", response_model=EnvironmentTag)
def update_environment_tag(
    orgName: str,
    projectName: str,
    envName: str,
    tagName: str,
    body: UpdateEnvironmentTag,
    svc: ServiceDep,
    config: ConfigDep,
) -> JSONResponse:
    """Change a tag's value (and name), if its value is still ``currentTag.value`` (409 otherwise)."""
    check_org(config, orgName)
    env = env_ref(projectName, envName)
    path_text(tagName, "tag name")
    new_name = body.new_tag.name or tagName
    expected = body.current_tag.value
    if new_name == tagName:
        tag = svc.set_env_tag(env, tagName, body.new_tag.value, expected_value=expected)
        return JSONResponse(_env_tag(tag))
    if _find_env_tag(svc, env, tagName).value != expected:
        raise ConflictError(f"the tag {tagName!r} of {env} has changed", hint="read it again and resend")
    tag = svc.set_env_tag(env, new_name, body.new_tag.value, create_only=True)
    svc.delete_env_tag(env, tagName)
    return JSONResponse(_env_tag(tag))


@router.delete(_ENV_TAGS + "/{tagName:path}", status_code=204, response_class=Response)
def delete_environment_tag(
    orgName: str,
    projectName: str,
    envName: str,
    tagName: str,
    svc: ServiceDep,
    config: ConfigDep,
) -> Response:
    check_org(config, orgName)
    svc.delete_env_tag(env_ref(projectName, envName), path_text(tagName, "tag name"))
    return Response(status_code=204)

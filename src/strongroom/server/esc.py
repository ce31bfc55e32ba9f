"""The ESC-compatible REST API under ``/api/esc``, for Pulumi ESC's clients as they are.

The routes, request bodies and responses are those of Pulumi ESC's API as its
official SDK (``pulumi_esc_sdk``) calls them: point the SDK's host at this server and
give it a Strongroom token. Environments, definitions, checks, clones and revisions
are here; open sessions are in :mod:`strongroom.server.esc_open`, revision and
environment tags in :mod:`strongroom.server.esc_tags`. Every route calls a
:class:`~strongroom.service.Service` method, which checks the caller's role and scope
and audits what it shows. Parameters keep ESC's names (``orgName``, ``continuationToken``)
so that the OpenAPI document matches ESC's. See ``docs/server.md``.
"""

from __future__ import annotations

__all__ = ["router"]

import base64
import binascii
import random
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, Response

from strongroom.access import Principal
from strongroom.errors import ConflictError, InvalidInputError, InvalidNameError, NotFoundError
from strongroom.model import EnvRef, RevisionRef
from strongroom.server.config import ServerConfig
from strongroom.server.deps import app_config, principal, service
from strongroom.server.errors import error_body
from strongroom.server.esc_common import (
    YAML_RESPONSE,
    check_org,
    env_ref,
    etag,
    expected_revision,
    revision_ref,
    yaml_response,
)
from strongroom.server.esc_models import (
    CheckEnvironment,
    CloneEnvironment,
    CreateEnvironment,
    EnvironmentDiagnostics,
    EnvironmentRevision,
    OrgEnvironments,
)
from strongroom.server.esc_open import router as open_router
from strongroom.server.esc_tags import router as tags_router
from strongroom.server.esc_values import diagnostics_json, properties_json
from strongroom.server.routing import YAML_BODY, ContentTypeRoute, yaml_body
from strongroom.service import DEFAULT_PROJECT, WRITE_RETRIES, Service

ServiceDep = Annotated[Service, Depends(service)]
ConfigDep = Annotated[ServerConfig, Depends(app_config)]
YamlBody = Annotated[str, Depends(yaml_body)]
#: Environments per page of ``GET /environments/{orgName}``.
PAGE_SIZE = 100
#: The name ``yaml/check`` evaluates a definition as (ESC's anonymous environment is ``<yaml>``).
_CHECK_ENV = EnvRef(DEFAULT_PROJECT, "<yaml>")

_envs = APIRouter(route_class=ContentTypeRoute)


def _token(ref: EnvRef) -> str:
    return base64.urlsafe_b64encode(str(ref).encode()).decode("ascii").rstrip("=")


def _after(token: str | None) -> EnvRef | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
        return EnvRef.parse(text)
    except (binascii.Error, ValueError, InvalidNameError):
        raise InvalidInputError(
            "invalid continuationToken", hint="pass the nextToken of the previous page unchanged"
        ) from None


@_envs.get("/environments/{orgName}", response_model=OrgEnvironments)
def list_environments(
    orgName: str,
    svc: ServiceDep,
    config: ConfigDep,
    who: Annotated[Principal, Depends(principal)],
    continuationToken: Annotated[str | None, Query(max_length=400)] = None,
) -> Any:
    """Environments in name order, ``PAGE_SIZE`` at a time; ``nextToken`` continues."""
    check_org(config, orgName)
    after = _after(continuationToken)
    # A scoped token's list is filtered after reading, so a page cannot be cut short in the store.
    found = svc.list_environments(after=after, limit=None if who.scopes else PAGE_SIZE + 1)
    page = found[:PAGE_SIZE]
    environments = []
    for rec in page:
        try:
            newest = svc.resolve(RevisionRef(rec.ref))
        except NotFoundError:  # deleted since it was listed
            continue
        environments.append(
            {
                "organization": config.organization,
                "project": rec.ref.project,
                "name": rec.ref.name,
                "created": rec.created_at,
                "modified": newest.created_at,
            }
        )
    body: dict[str, Any] = {"environments": environments}
    if len(found) > PAGE_SIZE:
        body["nextToken"] = _token(page[-1].ref)
    return JSONResponse(body)


@_envs.post("/environments/{orgName}", status_code=204, response_class=Response)
def create_environment(orgName: str, body: CreateEnvironment, svc: ServiceDep, config: ConfigDep) -> Response:
    """A new, empty environment (``project/name``)."""
    check_org(config, orgName)
    svc.create_environment(env_ref(body.project, body.name), "")
    return Response(status_code=204)


@_envs.post(
    "/environments/{orgName}/yaml/check",
    response_model=CheckEnvironment,
    responses={400: {"model": CheckEnvironment, "description": "The definition has errors"}},
    openapi_extra=YAML_BODY,
)
def check_yaml(orgName: str, text: YamlBody, svc: ServiceDep, config: ConfigDep) -> Any:
    """Compile and evaluate a definition without saving it; secrets stay masked."""
    check_org(config, orgName)
    compiled, evaluation = svc.check(_CHECK_ENV, text)
    diags = [d.to_diagnostic() for d in compiled.diagnostics]
    if evaluation is not None:
        diags.extend(d.to_diagnostic() for d in evaluation.diagnostics)
    rename = {str(_CHECK_ENV): "<yaml>"}
    body: dict[str, Any] = {"diagnostics": diagnostics_json(diags, rename=rename)}
    if evaluation is not None:
        body["properties"] = properties_json(evaluation.value, reveal=False, rename=rename)
    if any(d.severity == "error" for d in diags):
        errors = sum(1 for d in diags if d.severity == "error")
        return JSONResponse({**error_body(400, f"the definition has {errors} error(s)"), **body}, status_code=400)
    return JSONResponse(body)


@_envs.head("/environments/{orgName}/{projectName}/{envName}", response_class=Response)
def environment_etag(orgName: str, projectName: str, envName: str, svc: ServiceDep, config: ConfigDep) -> Response:
    """The newest revision's ETag, without the definition."""
    check_org(config, orgName)
    rev = svc.definition(revision_ref(projectName, envName))
    return Response(status_code=200, headers={"ETag": etag(rev.number)})


@_envs.get("/environments/{orgName}/{projectName}/{envName}", response_class=Response, responses=YAML_RESPONSE)
def get_environment(orgName: str, projectName: str, envName: str, svc: ServiceDep, config: ConfigDep) -> Response:
    """The definition as stored (secrets as ciphertext), with the revision as its ETag."""
    check_org(config, orgName)
    rev = svc.definition(revision_ref(projectName, envName))
    return yaml_response(rev.definition, revision=rev.number)


@_envs.patch(
    "/environments/{orgName}/{projectName}/{envName}",
    response_model=EnvironmentDiagnostics,
    responses={409: {"description": "If-Match names a revision that is no longer the newest"}},
    openapi_extra=YAML_BODY,
)
def update_environment(
    orgName: str,
    projectName: str,
    envName: str,
    text: YamlBody,
    svc: ServiceDep,
    config: ConfigDep,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> Any:
    """Replace the definition (a new revision); plaintext ``fn::secret`` values are encrypted."""
    check_org(config, orgName)
    env = env_ref(projectName, envName)
    expected = expected_revision(if_match)
    for attempt in range(WRITE_RETRIES):
        try:
            rev = svc.replace_definition(env, text, expected_latest=expected)
            break
        except ConflictError:
            # Without If-Match the last writer wins: lost a race between reading and writing, so go again.
            if expected is not None or attempt == WRITE_RETRIES - 1:
                raise
            time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))  # noqa: S311 (jitter, not a secret)
    return JSONResponse({"diagnostics": diagnostics_json(rev.warnings)}, headers={"ETag": etag(rev.number)})


@_envs.delete("/environments/{orgName}/{projectName}/{envName}", status_code=204, response_class=Response)
def delete_environment(orgName: str, projectName: str, envName: str, svc: ServiceDep, config: ConfigDep) -> Response:
    """Delete the environment and all its revisions (admin)."""
    check_org(config, orgName)
    svc.delete_environment(env_ref(projectName, envName))
    return Response(status_code=204)


@_envs.get("/environments/{orgName}/{projectName}/{envName}/decrypt", response_class=Response, responses=YAML_RESPONSE)
def decrypt_environment(orgName: str, projectName: str, envName: str, svc: ServiceDep, config: ConfigDep) -> Response:
    """The definition with its secrets in plaintext (``fn::secret: VALUE``); needs the open right."""
    check_org(config, orgName)
    return yaml_response(svc.definition_text(revision_ref(projectName, envName), show_secrets=True))


@_envs.post("/environments/{orgName}/{projectName}/{envName}/clone", status_code=204, response_class=Response)
def clone_environment(
    orgName: str,
    projectName: str,
    envName: str,
    body: CloneEnvironment,
    svc: ServiceDep,
    config: ConfigDep,
) -> Response:
    """Copy to ``body.project/body.name``: the newest revision, or the whole history with
    ``preserveHistory`` (revision tags come with it); ``preserveEnvironmentTags`` copies tags."""
    check_org(config, orgName)
    src = env_ref(projectName, envName)
    dst = env_ref(body.project, body.name)
    svc.clone(src, dst, preserve_history=bool(body.preserve_history))
    if body.preserve_environment_tags:
        for tag in svc.list_env_tags(src):
            svc.set_env_tag(dst, tag.name, tag.value)
    return Response(status_code=204)


@_envs.get("/environments/{orgName}/{projectName}/{envName}/versions", response_model=list[EnvironmentRevision])
def list_revisions(
    orgName: str,
    projectName: str,
    envName: str,
    svc: ServiceDep,
    config: ConfigDep,
    before: Annotated[int | None, Query(ge=1)] = None,
    count: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Any:
    """Revisions newest first: those below ``before`` when given, at most ``count`` (default 100)."""
    check_org(config, orgName)
    entries = [e for e in svc.history(env_ref(projectName, envName)) if before is None or e.number < before]
    return JSONResponse(
        [
            {
                "number": e.number,
                "created": e.created_at,
                "creatorLogin": e.author,
                "creatorName": e.author,
                "tags": list(e.tags),
            }
            for e in entries[: count or 100]
        ]
    )


@_envs.get(
    "/environments/{orgName}/{projectName}/{envName}/versions/{version}",
    response_class=Response,
    responses=YAML_RESPONSE,
)
def get_environment_at_version(
    orgName: str,
    projectName: str,
    envName: str,
    version: str,
    svc: ServiceDep,
    config: ConfigDep,
) -> Response:
    """The definition of one revision (a number or a tag), with that revision as its ETag."""
    check_org(config, orgName)
    rev = svc.definition(revision_ref(projectName, envName, version))
    return yaml_response(rev.definition, revision=rev.number)


router = APIRouter(dependencies=[Depends(principal)])
# Order matters: ``versions/tags`` before ``versions/{version}``.
router.include_router(tags_router)
router.include_router(open_router)
router.include_router(_envs)

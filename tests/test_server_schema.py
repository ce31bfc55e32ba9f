"""Schemathesis over the served OpenAPI document: no 5xx, and every response as the document says.

Each operation of Strongroom's own routes (ESC-compatible, tokens, audit, probes) gets a
bounded number of generated requests, valid and invalid, against the live server with
an admin token: once with random names, once aimed at an environment that exists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from strongroom.model import EnvRef  # noqa: E402
from strongroom.server.testing import Harness, running_server  # noqa: E402

OURS = r"^/(api/esc/|api/v1/(tokens|audit)|healthz$|readyz$)"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES = 12


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_server(tmp_path_factory.mktemp("schema") / "home", auth_failure_limit=100_000) as h:
        yield h


def _seed(harness: Harness) -> None:
    svc = harness.service()
    for name in ("app", "other"):
        ref = EnvRef("proj", name)
        if ref not in {e.ref for e in harness.store.list_environments(project="proj")}:
            svc.create_environment(ref, "values:\n  a: 1\n  s:\n    fn::secret: hush\n")
            svc.tag(ref, "stable", 1)
            svc.set_env_tag(ref, "team", "web")


def _run(harness: Harness, *, aimed: bool, mode: object) -> list[str]:
    token = harness.token(f"schema-{aimed}-{mode}", "admin")
    headers = {"Authorization": f"token {token}"}
    schema = schemathesis.openapi.from_url(f"{harness.url}/openapi.json").include(path_regex=OURS)
    problems: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        params = {}
        if aimed:
            wanted = {"orgName": "default", "projectName": "proj", "envName": "app"}
            params = {k: v for k, v in wanted.items() if re.search(r"\{" + k + r"\}", operation.path)}
            _seed(harness)
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=params or None)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=harness.url, headers=headers, checks=CHECKS, timeout=30)

        try:
            check()
        except Unsatisfiable:  # an operation without inputs has no invalid requests to make
            assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # collect every operation's failure, then report them together
            problems.append(f"{operation.label}: {str(exc)[:2000]}")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("aimed", [False, True], ids=["random-names", "existing-environment"])
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_openapi_conformance(harness: Harness, aimed: bool, mode: str):
    problems = _run(harness, aimed=aimed, mode=schemathesis.GenerationMode(mode))
    assert not problems, "\n\n".join(problems)


def test_the_document_declares_errors_and_no_422(harness: Harness):
    import httpx

    document = httpx.get(f"{harness.url}/openapi.json").json()
    assert document["components"]["securitySchemes"]["token"]["name"] == "Authorization"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            assert responses["400"]["content"]["application/json"]["schema"], (method, path)
            if path.startswith("/api/"):
                assert {"401", "403", "404", "429"} <= set(responses), (method, path)
    assert "/metrics" not in document["paths"]
    assert "/docs" not in document["paths"]

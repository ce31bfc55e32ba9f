"""Tests of the fake Kubernetes API server (``strongroom.testing.kube_api``), over real HTTP.

One server serves the whole module; each test works in a namespace of its own (the ``ns``
fixture), and the ``_reset`` fixture removes denials, injected failures and latency after each test.
The behaviours and the documents they follow are listed in docs/testing/kubernetes-api.md.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import time
import uuid

import httpx
import pytest
import yaml

from strongroom.testing.kube_api import (
    DEFAULT_USER,
    FakeKubernetesAPI,
    KubeAPIError,
    KubeAPIServer,
    RecordedRequest,
)

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STALE_MESSAGE = "the object has been modified; please apply your changes to the latest version and try again"


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server():
    with KubeAPIServer() as running:
        yield running


@pytest.fixture(scope="module")
def api(server):
    return server.api


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer test-token"}, timeout=10) as http:
        yield http


@pytest.fixture(autouse=True)
def _reset(request):
    yield
    if "server" in request.fixturenames:
        running = request.getfixturevalue("server")
        running.api.clear_denials()
        running.api.clear_failures()
        running.latency = 0.0
        running.api.namespace_deletion_delay = 0.0


@pytest.fixture
def ns(api):
    name = f"t-{uuid.uuid4().hex[:10]}"
    api.create_namespace(name)
    return name


def secrets_path(ns: str, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{ns}/secrets"
    return f"{path}/{name}" if name else path


def deployments_path(ns: str, name: str | None = None) -> str:
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    return f"{path}/{name}" if name else path


def make_secret(client, ns, name, data=None, **extra):
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, **extra.pop("metadata", {})}}
    if data is not None:
        body["data"] = {key: b64(value) for key, value in data.items()}
    body.update(extra)
    response = client.post(secrets_path(ns), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def apply(client, path, body, manager, force=False, **params):
    params = {"fieldManager": manager, **params}
    if force:
        params["force"] = "true"
    return client.patch(path, params=params, content=json.dumps(body), headers={"Content-Type": APPLY})


def patch(client, path, body, content_type, **params):
    return client.patch(path, params=params, content=json.dumps(body), headers={"Content-Type": content_type})


def assert_status(response, code, reason):
    assert response.status_code == code, response.text
    body = response.json()
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["reason"] == reason
    assert body["code"] == code
    return body


def deployment(name, image="registry.example/app:1", **spec_extra):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": image,
                            "env": [
                                {"name": "PLAIN", "value": "1"},
                                {
                                    "name": "DATABASE_URL",
                                    "valueFrom": {"secretKeyRef": {"name": "app-env", "key": "DATABASE_URL"}},
                                },
                            ],
                            "envFrom": [{"secretRef": {"name": "app-env"}}],
                            "volumeMounts": [{"name": "creds", "mountPath": "/creds"}],
                        }
                    ],
                    "volumes": [{"name": "creds", "secret": {"secretName": "app-files"}}],
                    "imagePullSecrets": [{"name": "registry"}],
                },
            },
            **spec_extra,
        },
    }


def statefulset(name):
    body = deployment(name)
    body["kind"] = "StatefulSet"
    body["spec"]["serviceName"] = name
    return body


def managers(obj):
    return {(entry["manager"], entry["operation"]): entry["fieldsV1"] for entry in obj["metadata"]["managedFields"]}


# --------------------------------------------------------------------------- discovery, auth, routing


def test_discovery_documents(client):
    core = client.get("/api").json()
    assert core["kind"] == "APIVersions" and core["versions"] == ["v1"]
    core_resources = {r["name"]: r for r in client.get("/api/v1").json()["resources"]}
    assert core_resources["secrets"]["kind"] == "Secret" and core_resources["secrets"]["namespaced"] is True
    assert core_resources["namespaces"]["namespaced"] is False
    groups = client.get("/apis").json()
    assert groups["kind"] == "APIGroupList"
    assert groups["groups"][0]["preferredVersion"]["groupVersion"] == "apps/v1"
    assert client.get("/apis/apps").json()["kind"] == "APIGroup"
    apps = client.get("/apis/apps/v1").json()
    assert apps["groupVersion"] == "apps/v1"
    assert {r["name"]: r["kind"] for r in apps["resources"]} == {
        "deployments": "Deployment",
        "statefulsets": "StatefulSet",
    }
    version = httpx.get(client.base_url.join("/version")).json()  # no token needed
    assert version["major"] == "1" and version["gitVersion"].startswith("v1.")


def test_health_probes_are_public_and_not_recorded(server, api):
    api.clear_requests()
    for path in ("/healthz", "/livez", "/readyz"):
        response = httpx.get(server.url + path)
        assert response.status_code == 200 and response.text == "ok"
    assert api.requests == []


def test_missing_or_wrong_token_is_401_status(server):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdC10b2tlbg=="}):
        response = httpx.get(server.url + "/api/v1/namespaces", headers=headers)
        body = assert_status(response, 401, "Unauthorized")
        assert body["message"] == "Unauthorized"


def test_unknown_paths_and_methods(client, ns):
    body = assert_status(client.get("/api/v1/configmaps"), 404, "NotFound")
    assert body["message"] == "the server could not find the requested resource"
    assert_status(client.get("/apis/batch/v1/jobs"), 404, "NotFound")
    assert_status(client.get(f"{secrets_path(ns, 'x')}/status"), 404, "NotFound")
    assert_status(client.post("/api/v1/secrets", json={}), 405, "MethodNotAllowed")
    assert_status(client.put(secrets_path(ns), json={}), 405, "MethodNotAllowed")


def test_watch_is_refused_with_a_clear_message(client, ns):
    body = assert_status(client.get(secrets_path(ns), params={"watch": "true"}), 405, "MethodNotAllowed")
    assert "watch is not supported" in body["message"]
    assert_status(client.get("/api/v1/namespaces", params={"watch": "1"}), 405, "MethodNotAllowed")


# --------------------------------------------------------------------------- namespaces


def test_new_cluster_has_the_usual_namespaces(client):
    names = [item["metadata"]["name"] for item in client.get("/api/v1/namespaces").json()["items"]]
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(names)
    assert names == sorted(names)


def test_namespace_create_get_list(client):
    name = f"n-{uuid.uuid4().hex[:8]}"
    created = client.post(
        "/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    assert created.status_code == 201
    got = client.get(f"/api/v1/namespaces/{name}").json()
    assert got["kind"] == "Namespace"
    assert got["status"] == {"phase": "Active"}
    assert got["spec"] == {"finalizers": ["kubernetes"]}
    assert got["metadata"]["labels"]["kubernetes.io/metadata.name"] == name
    listed = client.get("/api/v1/namespaces", params={"fieldSelector": f"metadata.name={name}"}).json()
    assert listed["kind"] == "NamespaceList" and [i["metadata"]["name"] for i in listed["items"]] == [name]
    body = assert_status(client.post("/api/v1/namespaces", json={"metadata": {"name": name}}), 409, "AlreadyExists")
    assert body["message"] == f'namespaces "{name}" already exists'


def test_namespace_name_must_be_a_dns_label(client):
    body = assert_status(client.post("/api/v1/namespaces", json={"metadata": {"name": "has.dots"}}), 422, "Invalid")
    assert body["message"].startswith('Namespace "has.dots" is invalid: metadata.name: Invalid value: "has.dots"')
    assert "RFC 1123 label" in body["message"]
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_namespace_delete_removes_its_contents(client, api, ns):
    make_secret(client, ns, "s", {"a": "1"})
    assert client.post(deployments_path(ns), json=deployment("web")).status_code == 201
    response = client.delete(f"/api/v1/namespaces/{ns}")
    assert response.status_code == 200
    assert response.json()["status"]["phase"] == "Terminating"
    assert response.json()["metadata"]["deletionTimestamp"]
    assert_status(client.get(f"/api/v1/namespaces/{ns}"), 404, "NotFound")
    assert_status(client.get(secrets_path(ns, "s")), 404, "NotFound")
    assert client.get(deployments_path(ns)).json()["items"] == []
    assert api.get_object("secrets", "s", ns) is None


def test_terminating_namespace_refuses_new_content(client, api, ns):
    api.namespace_deletion_delay = 60
    assert client.delete(f"/api/v1/namespaces/{ns}").status_code == 200
    assert client.get(f"/api/v1/namespaces/{ns}").json()["status"]["phase"] == "Terminating"
    body = assert_status(client.post(secrets_path(ns), json={"metadata": {"name": "late"}}), 403, "Forbidden")
    assert body["message"] == (
        f'secrets "late" is forbidden: unable to create new content in namespace {ns} because it is being terminated'
    )
    assert body["details"]["causes"][0]["reason"] == "NamespaceTerminating"
    assert_status(
        apply(client, secrets_path(ns, "late"), {"apiVersion": "v1", "kind": "Secret"}, "m"), 403, "Forbidden"
    )
    again = assert_status(client.delete(f"/api/v1/namespaces/{ns}"), 409, "Conflict")
    assert "The system is ensuring all content is removed from this namespace" in again["message"]


def test_system_namespaces_cannot_be_deleted(client):
    body = assert_status(client.delete("/api/v1/namespaces/default"), 403, "Forbidden")
    assert body["message"] == 'namespaces "default" is forbidden: this namespace may not be deleted'


def test_missing_namespace(client):
    body = assert_status(client.post(secrets_path("nope"), json={"metadata": {"name": "s"}}), 404, "NotFound")
    assert body["message"] == 'namespaces "nope" not found'
    assert body["details"] == {"name": "nope", "kind": "namespaces"}
    assert_status(client.get(secrets_path("nope", "s")), 404, "NotFound")
    assert_status(client.get("/api/v1/namespaces/nope"), 404, "NotFound")
    # As in a real cluster, listing in a namespace that does not exist is an empty list.
    assert client.get(secrets_path("nope")).json()["items"] == []


# --------------------------------------------------------------------------- secrets: CRUD


def test_secret_create_and_get(client, ns):
    created = make_secret(client, ns, "app-env", {"DATABASE_URL": "postgres://db"}, metadata={"labels": {"a": "b"}})
    assert created["kind"] == "Secret" and created["apiVersion"] == "v1"
    metadata = created["metadata"]
    assert metadata["namespace"] == ns
    assert uuid.UUID(metadata["uid"])
    assert metadata["resourceVersion"].isdigit()
    assert metadata["creationTimestamp"].endswith("Z")
    assert created["type"] == "Opaque"
    got = client.get(secrets_path(ns, "app-env")).json()
    assert got["data"] == {"DATABASE_URL": b64("postgres://db")}
    assert got["metadata"]["resourceVersion"] == metadata["resourceVersion"]


def test_string_data_is_merged_into_data_and_never_returned(client, api, ns):
    created = make_secret(client, ns, "s", {"A": "from-data", "B": "b"}, stringData={"A": "from-string", "C": "ü"})
    assert "stringData" not in created
    assert created["data"] == {"A": b64("from-string"), "B": b64("b"), "C": b64("ü")}
    assert "stringData" not in client.get(secrets_path(ns, "s")).json()
    assert api.secret_data("s", ns) == {"A": b"from-string", "B": b"b", "C": "ü".encode()}


def test_resource_version_is_one_global_increasing_counter(client, ns):
    first = make_secret(client, ns, "one")["metadata"]["resourceVersion"]
    second = client.post(deployments_path(ns), json=deployment("web")).json()["metadata"]["resourceVersion"]
    third = make_secret(client, ns, "two")["metadata"]["resourceVersion"]
    assert int(first) < int(second) < int(third)
    listed = client.get(secrets_path(ns)).json()
    assert int(listed["metadata"]["resourceVersion"]) >= int(third)


def test_create_existing_name_is_409_already_exists(client, ns):
    make_secret(client, ns, "dup")
    body = assert_status(client.post(secrets_path(ns), json={"metadata": {"name": "dup"}}), 409, "AlreadyExists")
    assert body["message"] == 'secrets "dup" already exists'
    assert body["details"] == {"name": "dup", "kind": "secrets"}


def test_get_missing_secret_is_404_not_found(client, ns):
    body = assert_status(client.get(secrets_path(ns, "missing")), 404, "NotFound")
    assert body["message"] == 'secrets "missing" not found'
    assert body["details"] == {"name": "missing", "kind": "secrets"}


def test_replace_keeps_identity_and_bumps_resource_version(client, ns):
    created = make_secret(client, ns, "s", {"a": "1"})
    created["data"] = {"b": b64("2")}
    replaced = client.put(secrets_path(ns, "s"), json=created)
    assert replaced.status_code == 200
    result = replaced.json()
    assert result["data"] == {"b": b64("2")}
    assert result["metadata"]["uid"] == created["metadata"]["uid"]
    assert result["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert int(result["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])


def test_replace_with_stale_resource_version_is_409_conflict(client, ns):
    created = make_secret(client, ns, "s", {"a": "1"})
    fresh = dict(created, data={"a": b64("2")})
    assert client.put(secrets_path(ns, "s"), json=fresh).status_code == 200
    stale = dict(created, data={"a": b64("3")})
    body = assert_status(client.put(secrets_path(ns, "s"), json=stale), 409, "Conflict")
    assert body["message"] == f'Operation cannot be fulfilled on secrets "s": {STALE_MESSAGE}'
    assert body["details"] == {"name": "s", "kind": "secrets"}
    assert client.get(secrets_path(ns, "s")).json()["data"] == {"a": b64("2")}


def test_replace_without_resource_version_is_unconditional(client, ns):
    make_secret(client, ns, "s", {"a": "1"})
    response = client.put(secrets_path(ns, "s"), json={"metadata": {"name": "s"}, "data": {"a": b64("9")}})
    assert response.status_code == 200 and response.json()["data"] == {"a": b64("9")}


def test_replace_errors(client, ns):
    make_secret(client, ns, "s")
    assert_status(client.put(secrets_path(ns, "absent"), json={"metadata": {"name": "absent"}}), 404, "NotFound")
    body = assert_status(client.put(secrets_path(ns, "s"), json={"metadata": {"name": "other"}}), 400, "BadRequest")
    assert body["message"] == "the name of the object (other) does not match the name on the URL (s)"
    other_ns = {"metadata": {"name": "s", "namespace": "default"}}
    assert_status(client.put(secrets_path(ns, "s"), json=other_ns), 400, "BadRequest")
    bad_uid = {"metadata": {"name": "s", "uid": "not-the-uid"}}
    assert (
        "Precondition failed: UID"
        in assert_status(client.put(secrets_path(ns, "s"), json=bad_uid), 409, "Conflict")["message"]
    )


def test_unchanged_replace_is_a_no_op(client, ns):
    created = make_secret(client, ns, "s", {"a": "1"})
    again = client.put(secrets_path(ns, "s"), json=created).json()
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert again["metadata"]["managedFields"] == created["metadata"]["managedFields"]


def test_delete_returns_success_status(client, ns):
    created = make_secret(client, ns, "s")
    response = client.delete(secrets_path(ns, "s"))
    assert response.status_code == 200
    assert response.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "s", "kind": "secrets", "uid": created["metadata"]["uid"]},
    }
    assert_status(client.get(secrets_path(ns, "s")), 404, "NotFound")
    assert_status(client.delete(secrets_path(ns, "s")), 404, "NotFound")


def test_delete_preconditions(client, ns):
    created = make_secret(client, ns, "s")
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": "1"}}
    body = assert_status(client.request("DELETE", secrets_path(ns, "s"), json=options), 409, "Conflict")
    assert "Precondition failed: ResourceVersion in precondition: 1" in body["message"]
    options["preconditions"] = {"resourceVersion": created["metadata"]["resourceVersion"]}
    assert client.request("DELETE", secrets_path(ns, "s"), json=options).status_code == 200


def test_dry_run_changes_nothing(client, api, ns):
    response = client.post(secrets_path(ns), params={"dryRun": "All"}, json={"metadata": {"name": "s"}})
    assert response.status_code == 201 and response.json()["metadata"]["name"] == "s"
    assert api.get_object("secrets", "s", ns) is None


def test_generate_name(client, ns):
    response = client.post(secrets_path(ns), json={"metadata": {"generateName": "token-"}})
    name = response.json()["metadata"]["name"]
    assert response.status_code == 201 and name.startswith("token-") and len(name) == len("token-") + 5


def test_delete_collection_by_label(client, ns):
    make_secret(client, ns, "a", metadata={"labels": {"owner": "sr"}})
    make_secret(client, ns, "b", metadata={"labels": {"owner": "sr"}})
    make_secret(client, ns, "c")
    response = client.delete(secrets_path(ns), params={"labelSelector": "owner=sr"})
    assert response.status_code == 200
    assert [item["metadata"]["name"] for item in response.json()["items"]] == ["a", "b"]
    assert [item["metadata"]["name"] for item in client.get(secrets_path(ns)).json()["items"]] == ["c"]


# --------------------------------------------------------------------------- secrets: validation


@pytest.mark.parametrize("name", ["Bad_Name", "-leading", "trailing-", "UPPER", "a" * 254, "sp ace"])
def test_secret_name_must_be_a_dns_subdomain(client, ns, name):
    body = assert_status(client.post(secrets_path(ns), json={"metadata": {"name": name}}), 422, "Invalid")
    assert body["message"].startswith(f'Secret "{name}" is invalid: metadata.name: Invalid value: "{name}"')
    assert body["details"]["kind"] == "Secret" and body["details"]["name"] == name
    assert body["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "message": body["details"]["causes"][0]["message"],
        "field": "metadata.name",
    }


def test_name_is_required(client, ns):
    body = assert_status(client.post(secrets_path(ns), json={"metadata": {}}), 422, "Invalid")
    assert "metadata.name: Required value: name or generateName is required" in body["message"]


@pytest.mark.parametrize("key", ["bad key", "a/b", "..x", ".", "ü"])
def test_secret_data_keys_must_be_config_keys(client, ns, key):
    response = client.post(secrets_path(ns), json={"metadata": {"name": "s"}, "data": {key: b64("v")}})
    body = assert_status(response, 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == f"data[{key}]"
    assert f'Secret "s" is invalid: data[{key}]: Invalid value: ' in body["message"]


def test_valid_secret_data_keys(client, ns):
    make_secret(client, ns, "s", {"A_B": "1", "a-b.c": "2", ".dotfile": "3", "123": "4"})


def test_invalid_base64_is_rejected_like_the_real_decoder(client, ns):
    # A real API server rejects undecodable data while decoding the body: 400 BadRequest.
    response = client.post(secrets_path(ns), json={"metadata": {"name": "s"}, "data": {"k": "not base64!"}})
    body = assert_status(response, 400, "BadRequest")
    assert body["message"].startswith('Secret in version "v1" cannot be handled as a Secret:')
    assert "illegal base64 data" in body["message"]


def test_secret_size_limit_is_one_mebibyte(client, ns):
    exactly = b"x" * (1024 * 1024 - 1)
    make_secret(client, ns, "fits", {"a": exactly, "b": b"y"})
    response = client.post(
        secrets_path(ns), json={"metadata": {"name": "big"}, "data": {"a": b64(exactly), "b": b64(b"yz")}}
    )
    body = assert_status(response, 422, "Invalid")
    assert body["message"] == 'Secret "big" is invalid: data: Too long: may not be more than 1048576 bytes'


def test_request_body_limit_is_413(client, ns):
    huge = {"metadata": {"name": "huge"}, "stringData": {"a": "x" * (3 * 1024 * 1024 + 1)}}
    assert_status(client.post(secrets_path(ns), json=huge), 413, "RequestEntityTooLarge")


def test_immutable_secret(client, ns):
    created = make_secret(client, ns, "frozen", {"a": "1"}, immutable=True)
    changed = dict(created, data={"a": b64("2")})
    body = assert_status(client.put(secrets_path(ns, "frozen"), json=changed), 422, "Invalid")
    assert body["message"] == 'Secret "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set'
    unfrozen = dict(created, immutable=False)
    body = assert_status(client.put(secrets_path(ns, "frozen"), json=unfrozen), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "immutable"
    body = assert_status(patch(client, secrets_path(ns, "frozen"), {"stringData": {"a": "3"}}, MERGE), 422, "Invalid")
    assert "field is immutable" in body["message"]
    # Metadata may still change, and the Secret may be deleted.
    relabelled = patch(client, secrets_path(ns, "frozen"), {"metadata": {"labels": {"x": "y"}}}, MERGE)
    assert relabelled.status_code == 200
    assert client.delete(secrets_path(ns, "frozen")).status_code == 200


def test_secret_type_is_immutable(client, ns):
    make_secret(client, ns, "s", {"a": "1"})
    body = assert_status(patch(client, secrets_path(ns, "s"), {"type": "custom/x"}, MERGE), 422, "Invalid")
    assert body["message"] == 'Secret "s" is invalid: type: Invalid value: "custom/x": field is immutable'


def test_dockerconfigjson_secret_needs_a_valid_key(client, ns):
    docker = "kubernetes.io/dockerconfigjson"
    missing = client.post(secrets_path(ns), json={"metadata": {"name": "d"}, "type": docker, "data": {"x": b64("{}")}})
    body = assert_status(missing, 422, "Invalid")
    assert body["message"] == 'Secret "d" is invalid: data[.dockerconfigjson]: Required value'
    garbage = {"metadata": {"name": "d"}, "type": docker, "data": {".dockerconfigjson": b64("{not json")}}
    body = assert_status(client.post(secrets_path(ns), json=garbage), 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "data[.dockerconfigjson]"
    assert "<secret contents redacted>" in body["message"]
    config = json.dumps({"auths": {"registry.example": {"auth": b64("u:p")}}})
    make_secret(client, ns, "d", {".dockerconfigjson": config}, type=docker)


def test_tls_secret_needs_both_keys(client, ns):
    response = client.post(
        secrets_path(ns), json={"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"tls.crt": b64("c")}}
    )
    body = assert_status(response, 422, "Invalid")
    assert body["message"] == 'Secret "t" is invalid: data[tls.key]: Required value'


def test_labels_are_validated(client, ns):
    response = client.post(secrets_path(ns), json={"metadata": {"name": "s", "labels": {"ok": "bad value!"}}})
    body = assert_status(response, 422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.labels"
    response = client.post(secrets_path(ns), json={"metadata": {"name": "s", "labels": {"-bad": "v"}}})
    assert_status(response, 422, "Invalid")


def test_unknown_fields_warn_or_fail_in_strict_mode(client, ns):
    response = client.post(secrets_path(ns), json={"metadata": {"name": "s"}, "dta": {}})
    assert response.status_code == 201
    assert response.headers["Warning"] == '299 - "unknown field \\"dta\\""'
    assert "dta" not in response.json()
    strict = client.post(
        secrets_path(ns), params={"fieldValidation": "Strict"}, json={"metadata": {"name": "t"}, "x": 1}
    )
    body = assert_status(strict, 400, "BadRequest")
    assert body["message"] == 'strict decoding error: unknown field "x"'


def test_body_errors(client, ns):
    assert_status(client.post(secrets_path(ns), content=b"{not json"), 400, "BadRequest")
    wrong_kind = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}}
    assert_status(client.post(secrets_path(ns), json=wrong_kind), 400, "BadRequest")
    as_protobuf = client.post(
        secrets_path(ns), content=b"\x00", headers={"Content-Type": "application/vnd.kubernetes.protobuf"}
    )
    assert_status(as_protobuf, 415, "UnsupportedMediaType")
    yaml_body = b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: from-yaml\nstringData:\n  a: b\n"
    created = client.post(secrets_path(ns), content=yaml_body, headers={"Content-Type": "application/yaml"})
    assert created.status_code == 201 and created.json()["data"] == {"a": b64("b")}


# --------------------------------------------------------------------------- lists


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["web-prod", "web-stage"]),
        ("app==web", ["web-prod", "web-stage"]),
        ("app!=web", ["db", "plain"]),
        ("tier", ["db", "web-prod", "web-stage"]),
        ("!tier", ["plain"]),
        ("env in (prod,stage)", ["db", "web-prod", "web-stage"]),
        ("env in (prod)", ["db", "web-prod"]),
        ("env notin (prod)", ["plain", "web-stage"]),
        ("app=web,env=prod", ["web-prod"]),
        ("app=web, env notin (prod, dev)", ["web-stage"]),
        ("tier,!env", []),
        ("", ["db", "plain", "web-prod", "web-stage"]),
    ],
)
def test_label_selectors(client, api, selector, expected):
    namespace = "label-selectors"
    if api.get_object("namespaces", namespace) is None:
        api.create_namespace(namespace)
        labels = {
            "web-prod": {"app": "web", "env": "prod", "tier": "front"},
            "web-stage": {"app": "web", "env": "stage", "tier": "front"},
            "db": {"app": "db", "env": "prod", "tier": "back"},
            "plain": {},
        }
        for name, value in labels.items():
            api.create_object("secrets", {"metadata": {"name": name, "labels": value}}, namespace)
    response = client.get(secrets_path(namespace), params={"labelSelector": selector})
    assert response.status_code == 200
    assert [item["metadata"]["name"] for item in response.json()["items"]] == expected


@pytest.mark.parametrize("selector", ["app in (a", "app=b=c", "bad key=x", "a=ok!", "x notin ()"])
def test_invalid_label_selectors_are_400(client, ns, selector):
    assert_status(client.get(secrets_path(ns), params={"labelSelector": selector}), 400, "BadRequest")


def test_field_selectors(client, ns):
    make_secret(client, ns, "a")
    make_secret(client, ns, "b", {".dockercfg": "{}"}, type="kubernetes.io/dockercfg")

    def names(selector):
        response = client.get(secrets_path(ns), params={"fieldSelector": selector})
        assert response.status_code == 200, response.text
        return [item["metadata"]["name"] for item in response.json()["items"]]

    assert names("metadata.name=a") == ["a"]
    assert names("metadata.name!=a") == ["b"]
    assert names(f"metadata.namespace={ns},metadata.name==b") == ["b"]
    assert names("type=Opaque") == ["a"]
    body = assert_status(client.get(secrets_path(ns), params={"fieldSelector": "spec.x=1"}), 400, "BadRequest")
    assert body["message"] == "field label not supported: spec.x"
    body = assert_status(client.get(deployments_path(ns), params={"fieldSelector": "spec.x=1"}), 400, "BadRequest")
    assert body["message"] == '"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"'


def test_pagination_with_limit_and_continue(client, ns):
    for index in range(5):
        make_secret(client, ns, f"s{index}")
    first = client.get(secrets_path(ns), params={"limit": 2}).json()
    assert [i["metadata"]["name"] for i in first["items"]] == ["s0", "s1"]
    assert first["metadata"]["remainingItemCount"] == 3
    make_secret(client, ns, "s2a")  # created after the first chunk: not in this list
    second = client.get(secrets_path(ns), params={"limit": 2, "continue": first["metadata"]["continue"]}).json()
    assert [i["metadata"]["name"] for i in second["items"]] == ["s2", "s3"]
    third = client.get(secrets_path(ns), params={"limit": 2, "continue": second["metadata"]["continue"]}).json()
    assert [i["metadata"]["name"] for i in third["items"]] == ["s4"]
    assert "continue" not in third["metadata"]
    versions = {page["metadata"]["resourceVersion"] for page in (first, second, third)}
    assert len(versions) == 1
    assert len(client.get(secrets_path(ns)).json()["items"]) == 6


def test_continue_token_errors(client, api, ns):
    for index in range(3):
        make_secret(client, ns, f"s{index}")
    first = client.get(secrets_path(ns), params={"limit": 1}).json()
    assert_status(client.get(secrets_path(ns), params={"limit": 1, "continue": "garbage"}), 400, "BadRequest")
    api.expire_continue_tokens()
    body = assert_status(
        client.get(secrets_path(ns), params={"limit": 1, "continue": first["metadata"]["continue"]}), 410, "Expired"
    )
    assert "too old" in body["message"]
    assert_status(client.get(secrets_path(ns), params={"limit": "-1"}), 400, "BadRequest")


def test_list_secrets_in_all_namespaces(client, api):
    marker = uuid.uuid4().hex[:8]
    for namespace in ("all-b", "all-a"):
        if api.get_object("namespaces", namespace) is None:
            api.create_namespace(namespace)
        make_secret(client, namespace, f"s-{marker}", metadata={"labels": {"marker": marker}})
    listed = client.get("/api/v1/secrets", params={"labelSelector": f"marker={marker}"}).json()
    assert listed["kind"] == "SecretList" and listed["apiVersion"] == "v1"
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in listed["items"]] == [
        ("all-a", f"s-{marker}"),
        ("all-b", f"s-{marker}"),
    ]
    assert "kind" not in listed["items"][0]  # list items carry no kind/apiVersion, as from a real server


# --------------------------------------------------------------------------- patches


def test_merge_patch(client, ns):
    make_secret(client, ns, "s", {"a": "1", "b": "2"}, metadata={"labels": {"keep": "1", "drop": "1"}})
    response = patch(
        client,
        secrets_path(ns, "s"),
        {"data": {"a": None, "c": b64("3")}, "stringData": {"d": "4"}, "metadata": {"labels": {"drop": None}}},
        MERGE,
    )
    assert response.status_code == 200
    result = response.json()
    assert result["data"] == {"b": b64("2"), "c": b64("3"), "d": b64("4")}
    assert result["metadata"]["labels"] == {"keep": "1"}


def test_strategic_merge_patch_on_a_secret(client, ns):
    make_secret(client, ns, "s", {"a": "1"})
    response = patch(client, secrets_path(ns, "s"), {"data": {"b": b64("2")}}, STRATEGIC)
    assert response.json()["data"] == {"a": b64("1"), "b": b64("2")}


def test_strategic_merge_patch_merges_lists_by_key(client, ns):
    assert client.post(deployments_path(ns), json=deployment("web")).status_code == 201
    smp = {
        "spec": {
            "template": {
                "metadata": {"annotations": {"strongroom.dev/checksum": "abc"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [{"name": "NEW", "value": "x"}, {"name": "PLAIN", "$patch": "delete"}],
                        }
                    ],
                    "imagePullSecrets": [{"name": "second"}],
                },
            }
        }
    }
    response = patch(client, deployments_path(ns, "web"), smp, STRATEGIC)
    assert response.status_code == 200, response.text
    result = response.json()
    pod = result["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/app:1"
    assert [env["name"] for env in container["env"]] == ["DATABASE_URL", "NEW"]
    assert pod["imagePullSecrets"] == [{"name": "registry"}, {"name": "second"}]
    assert result["spec"]["template"]["metadata"]["annotations"] == {"strongroom.dev/checksum": "abc"}
    assert result["metadata"]["generation"] == 2
    # A plain merge patch replaces lists whole.
    merged = patch(
        client, deployments_path(ns, "web"), {"spec": {"template": {"spec": {"imagePullSecrets": []}}}}, MERGE
    )
    assert merged.json()["spec"]["template"]["spec"]["imagePullSecrets"] == []


def test_json_patch(client, ns):
    make_secret(client, ns, "s", {"a": "1"})
    operations = [
        {"op": "test", "path": "/data/a", "value": b64("1")},
        {"op": "add", "path": "/data/b", "value": b64("2")},
        {"op": "replace", "path": "/data/a", "value": b64("9")},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
        {"op": "copy", "from": "/data/b", "path": "/data/c"},
        {"op": "remove", "path": "/data/b"},
    ]
    response = patch(client, secrets_path(ns, "s"), operations, JSON_PATCH)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"a": b64("9"), "c": b64("2")}
    assert response.json()["metadata"]["labels"] == {"x": "y"}
    failed_test = [{"op": "test", "path": "/data/a", "value": b64("1")}]
    body = assert_status(patch(client, secrets_path(ns, "s"), failed_test, JSON_PATCH), 422, "Invalid")
    assert "test failed" in body["message"]
    missing = [{"op": "remove", "path": "/data/nope"}]
    assert_status(patch(client, secrets_path(ns, "s"), missing, JSON_PATCH), 422, "Invalid")
    not_a_patch = {"data": {"a": b64("1")}}
    assert_status(patch(client, secrets_path(ns, "s"), not_a_patch, JSON_PATCH), 400, "BadRequest")


def test_patch_with_stale_resource_version_is_409(client, ns):
    created = make_secret(client, ns, "s", {"a": "1"})
    assert patch(client, secrets_path(ns, "s"), {"data": {"a": b64("2")}}, MERGE).status_code == 200
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "data": {"a": b64("3")}}
    body = assert_status(patch(client, secrets_path(ns, "s"), stale, MERGE), 409, "Conflict")
    assert body["message"] == f'Operation cannot be fulfilled on secrets "s": {STALE_MESSAGE}'
    test_op = [{"op": "test", "path": "/metadata/resourceVersion", "value": created["metadata"]["resourceVersion"]}]
    assert_status(patch(client, secrets_path(ns, "s"), test_op, JSON_PATCH), 422, "Invalid")


def test_unsupported_patch_content_type_is_415(client, ns):
    make_secret(client, ns, "s")
    for content_type in ("application/json", "application/apply-patch+cbor", "text/plain"):
        body = assert_status(patch(client, secrets_path(ns, "s"), {}, content_type), 415, "UnsupportedMediaType")
        assert "application/merge-patch+json" in body["message"]


def test_patch_of_missing_object_is_404(client, ns):
    assert_status(patch(client, secrets_path(ns, "absent"), {"data": {}}, MERGE), 404, "NotFound")
    body = assert_status(patch(client, deployments_path(ns, "absent"), {}, STRATEGIC), 404, "NotFound")
    assert body["message"] == 'deployments.apps "absent" not found'
    assert body["details"] == {"name": "absent", "group": "apps", "kind": "deployments"}


def test_updates_record_the_field_manager(client, ns):
    created = make_secret(client, ns, "s", {"a": "1"})
    assert managers(created) == {("python-httpx", "Update"): {"f:data": {"f:a": {}}, "f:type": {}}}
    patched = patch(client, secrets_path(ns, "s"), {"data": {"b": b64("2")}}, MERGE, fieldManager="sync").json()
    assert managers(patched) == {
        ("python-httpx", "Update"): {"f:data": {"f:a": {}}, "f:type": {}},
        ("sync", "Update"): {"f:data": {"f:b": {}}},
    }
    # Changing a field moves it to the writer; removing it removes it from everyone.
    changed = patch(client, secrets_path(ns, "s"), {"data": {"a": b64("x"), "b": None}}, MERGE, fieldManager="sync")
    assert managers(changed.json()) == {
        ("python-httpx", "Update"): {"f:type": {}},
        ("sync", "Update"): {"f:data": {"f:a": {}}},
    }
    assert_status(patch(client, secrets_path(ns, "s"), {}, MERGE, force="true"), 400, "BadRequest")


# --------------------------------------------------------------------------- server-side apply


def secret_config(name, data=None, labels=None, **extra):
    """A Secret apply configuration; ``data`` goes in as ``stringData``."""
    config = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}
    if labels:
        config["metadata"]["labels"] = labels
    if data is not None:
        config["stringData"] = data
    config.update(extra)
    return config


def test_apply_creates_and_tracks_managed_fields(client, ns):
    response = apply(client, secrets_path(ns, "s"), secret_config("s", {"A": "1"}, {"app": "sr"}), "strongroom")
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["data"] == {"A": b64("1")} and result["type"] == "Opaque"
    [entry] = result["metadata"]["managedFields"]
    assert entry["manager"] == "strongroom" and entry["operation"] == "Apply"
    assert entry["apiVersion"] == "v1" and entry["fieldsType"] == "FieldsV1" and entry["time"].endswith("Z")
    assert entry["fieldsV1"] == {"f:data": {"f:A": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}


def test_apply_requires_a_field_manager_and_a_sound_body(client, ns):
    body = assert_status(
        client.patch(secrets_path(ns, "s"), content=json.dumps(secret_config("s")), headers={"Content-Type": APPLY}),
        400,
        "BadRequest",
    )
    assert body["message"] == "fieldManager is required for apply requests"
    assert_status(apply(client, secrets_path(ns, "s"), {"metadata": {"name": "s"}}, "m"), 400, "BadRequest")
    with_managed = secret_config("s", metadata={"name": "s", "managedFields": [{"manager": "x"}]})
    assert_status(apply(client, secrets_path(ns, "s"), with_managed, "m"), 400, "BadRequest")
    assert_status(apply(client, secrets_path(ns, "s"), secret_config("other"), "m"), 400, "BadRequest")


def test_apply_accepts_yaml(client, ns):
    document = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: y\nstringData:\n  K: value\n"
    response = client.patch(
        secrets_path(ns, "y"), params={"fieldManager": "m"}, content=document, headers={"Content-Type": APPLY}
    )
    assert response.status_code == 201 and response.json()["data"] == {"K": b64("value")}


def test_apply_conflicts_with_another_applier_unless_forced(client, ns):
    path = secrets_path(ns, "s")
    assert apply(client, path, secret_config("s", {"A": "1", "B": "2"}), "alice").status_code == 201
    response = apply(client, path, secret_config("s", {"A": "changed", "B": "changed"}), "bob")
    body = assert_status(response, 409, "Conflict")
    assert body["message"] == 'Apply failed with 2 conflicts: conflicts with "alice":\n- .data.A\n- .data.B'
    assert body["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.A"},
        {"reason": "FieldManagerConflict", "message": 'conflict with "alice"', "field": ".data.B"},
    ]
    single = assert_status(apply(client, path, secret_config("s", {"A": "changed"}), "bob"), 409, "Conflict")
    assert single["message"] == 'Apply failed with 1 conflict: conflict with "alice": .data.A'
    forced = apply(client, path, secret_config("s", {"A": "changed"}), "bob", force=True)
    assert forced.status_code == 200
    result = forced.json()
    assert result["data"] == {"A": b64("changed"), "B": b64("2")}
    assert managers(result) == {("alice", "Apply"): {"f:data": {"f:B": {}}}, ("bob", "Apply"): {"f:data": {"f:A": {}}}}


def test_apply_with_the_same_value_shares_ownership(client, ns):
    path = secrets_path(ns, "s")
    apply(client, path, secret_config("s", {"A": "1", "B": "2"}), "alice")
    response = apply(client, path, secret_config("s", {"A": "1"}), "bob")
    assert response.status_code == 200
    assert managers(response.json())[("bob", "Apply")] == {"f:data": {"f:A": {}}}
    assert managers(response.json())[("alice", "Apply")] == {"f:data": {"f:A": {}, "f:B": {}}}
    # alice stops applying A and B: B (hers alone) goes, A (shared with bob) stays.
    after = apply(client, path, secret_config("s", {}), "alice").json()
    assert after["data"] == {"A": b64("1")}
    assert ("alice", "Apply") not in managers(after)


def test_apply_removes_fields_the_manager_no_longer_applies(client, ns):
    path = secrets_path(ns, "s")
    apply(client, path, secret_config("s", {"A": "1", "B": "2"}, {"app": "sr", "old": "x"}), "strongroom")
    result = apply(client, path, secret_config("s", {"A": "1"}, {"app": "sr"}), "strongroom").json()
    assert result["data"] == {"A": b64("1")}
    assert result["metadata"]["labels"] == {"app": "sr"}
    assert managers(result)[("strongroom", "Apply")] == {
        "f:data": {"f:A": {}},
        "f:metadata": {"f:labels": {"f:app": {}}},
    }


def test_apply_of_an_empty_map_then_keys(client, ns):
    path = secrets_path(ns, "s")
    created = apply(client, path, secret_config("s", data={}) | {"data": {}}, "strongroom").json()
    assert "data" not in created
    assert managers(created)[("strongroom", "Apply")] == {"f:data": {}}
    result = apply(client, path, secret_config("s", {"A": "1"}), "strongroom").json()
    assert result["data"] == {"A": b64("1")}
    result = apply(client, path, secret_config("s", {}), "strongroom").json()
    assert "data" not in result


def test_managed_fields_can_be_stripped(client, ns):
    created = make_secret(client, ns, "s", {"a": "1"})
    ignored = client.put(
        secrets_path(ns, "s"), json=dict(created, metadata={**created["metadata"], "managedFields": []})
    )
    assert ignored.json()["metadata"]["managedFields"] == created["metadata"]["managedFields"]
    stripped = patch(client, secrets_path(ns, "s"), {"metadata": {"managedFields": [{}]}}, MERGE).json()
    assert "managedFields" not in stripped["metadata"]


def test_apply_conflicts_with_an_update_manager(client, ns):
    make_secret(client, ns, "s", {"A": "1"})  # created with POST: owned by "python-httpx", operation Update
    body = assert_status(apply(client, secrets_path(ns, "s"), secret_config("s", {"A": "2"}), "sync"), 409, "Conflict")
    assert body["message"].startswith('Apply failed with 1 conflict: conflict with "python-httpx" using v1 at ')
    assert body["message"].endswith(": .data.A")
    assert apply(client, secrets_path(ns, "s"), secret_config("s", {"A": "2"}), "sync", force=True).status_code == 200


def test_unchanged_apply_is_a_no_op(client, api, ns):
    path = secrets_path(ns, "s")
    first = apply(client, path, secret_config("s", {"A": "1"}), "strongroom").json()
    before = api.resource_version
    again = apply(client, path, secret_config("s", {"A": "1"}), "strongroom").json()
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert api.resource_version == before


def test_apply_honours_a_resource_version_precondition(client, ns):
    path = secrets_path(ns, "s")
    apply(client, path, secret_config("s", {"A": "1"}), "m")
    stale = secret_config("s", {"A": "2"}, metadata={"name": "s", "resourceVersion": "1"})
    assert_status(apply(client, path, stale, "m"), 409, "Conflict")


def test_apply_to_a_deployment_merges_containers_by_name(client, ns):
    assert client.post(deployments_path(ns), json=deployment("web"), params={"fieldManager": "helm"}).status_code == 201
    config = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "metadata": {"annotations": {"strongroom.dev/revision": "7"}},
                "spec": {"containers": [{"name": "app", "envFrom": [{"secretRef": {"name": "app-env-v7"}}]}]},
            }
        },
    }
    response = apply(client, deployments_path(ns, "web"), config, "strongroom")
    body = assert_status(response, 409, "Conflict")  # envFrom is an atomic list that helm set differently
    assert '.spec.template.spec.containers[name="app"].envFrom' in body["message"]
    response = apply(client, deployments_path(ns, "web"), config, "strongroom", force=True)
    assert response.status_code == 200, response.text
    result = response.json()
    container = result["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/app:1"  # still helm's
    assert container["envFrom"] == [{"secretRef": {"name": "app-env-v7"}}]
    assert result["spec"]["template"]["metadata"]["annotations"] == {"strongroom.dev/revision": "7"}
    owned = managers(result)[("strongroom", "Apply")]
    assert owned["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"app"}'] == {
        ".": {},
        "f:envFrom": {},
        "f:name": {},
    }
    assert result["metadata"]["generation"] == 2


# --------------------------------------------------------------------------- workloads


def test_deployment_lifecycle_stores_the_pod_template(client, ns):
    sent = deployment("web")
    created = client.post(deployments_path(ns), json=sent)
    assert created.status_code == 201, created.text
    result = created.json()
    assert result["kind"] == "Deployment" and result["apiVersion"] == "apps/v1"
    assert result["spec"]["template"] == sent["spec"]["template"]
    assert result["spec"]["replicas"] == 1
    assert result["metadata"]["generation"] == 1
    assert result["status"]["observedGeneration"] == 1 and result["status"]["updatedReplicas"] == 1
    result["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/app:2"
    result["status"] = {"replicas": 99}  # ignored: status is the server's
    replaced = client.put(deployments_path(ns, "web"), json=result).json()
    assert replaced["metadata"]["generation"] == 2
    assert replaced["status"]["observedGeneration"] == 2 and replaced["status"]["replicas"] == 1
    listed = client.get(deployments_path(ns)).json()
    assert listed["kind"] == "DeploymentList" and len(listed["items"]) == 1
    deleted = client.delete(deployments_path(ns, "web")).json()
    assert deleted["status"] == "Success" and deleted["details"]["group"] == "apps"
    assert deleted["details"]["kind"] == "deployments"
    assert_status(client.get(deployments_path(ns, "web")), 404, "NotFound")


def test_deployment_validation(client, ns):
    no_selector = deployment("a")
    del no_selector["spec"]["selector"]
    body = assert_status(client.post(deployments_path(ns), json=no_selector), 422, "Invalid")
    assert body["message"].startswith('Deployment.apps "a" is invalid: ')
    assert "spec.selector: Required value" in body["message"]
    assert body["details"]["group"] == "apps" and body["details"]["kind"] == "Deployment"
    mismatch = deployment("b")
    mismatch["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    body = assert_status(client.post(deployments_path(ns), json=mismatch), 422, "Invalid")
    assert "`selector` does not match template `labels`" in body["message"]
    created = client.post(deployments_path(ns), json=deployment("c")).json()
    created["spec"]["selector"] = {"matchLabels": {"app": "c", "extra": "x"}}
    created["spec"]["template"]["metadata"]["labels"]["extra"] = "x"
    body = assert_status(client.put(deployments_path(ns, "c"), json=created), 422, "Invalid")
    assert "spec.selector: Invalid value: " in body["message"] and "field is immutable" in body["message"]


def test_statefulset_lifecycle(client, ns):
    path = f"/apis/apps/v1/namespaces/{ns}/statefulsets"
    created = client.post(path, json=statefulset("db"))
    assert created.status_code == 201, created.text
    result = created.json()
    assert result["kind"] == "StatefulSet" and result["status"]["currentReplicas"] == 1
    scaled = patch(client, f"{path}/db", {"spec": {"replicas": 3}}, MERGE).json()
    assert scaled["spec"]["replicas"] == 3 and scaled["status"]["readyReplicas"] == 3
    body = assert_status(patch(client, f"{path}/db", {"spec": {"serviceName": "x"}}, MERGE), 422, "Invalid")
    assert "updates to statefulset spec for fields other than" in body["message"]
    assert client.get(path).json()["kind"] == "StatefulSetList"
    assert client.delete(f"{path}/db").status_code == 200


# --------------------------------------------------------------------------- RBAC


def test_rbac_denials_use_the_real_message_format(client, api, ns):
    api.deny(verb="create", resource="secrets", namespace="kube-system")
    body = assert_status(client.post(secrets_path("kube-system"), json={"metadata": {"name": "x"}}), 403, "Forbidden")
    assert body["message"] == (
        f'secrets is forbidden: User "{DEFAULT_USER}" cannot create resource "secrets" in API group "" '
        'in the namespace "kube-system"'
    )
    # Only what the rule names is denied.
    assert client.post(secrets_path(ns), json={"metadata": {"name": "x"}}).status_code == 201
    assert client.get(secrets_path("kube-system")).status_code == 200
    api.deny(verb="get", resource="secrets", namespace=ns, name="x")
    body = assert_status(client.get(secrets_path(ns, "x")), 403, "Forbidden")
    assert body["message"] == (
        f'secrets "x" is forbidden: User "{DEFAULT_USER}" cannot get resource "secrets" in API group "" '
        f'in the namespace "{ns}"'
    )
    assert body["details"] == {"name": "x", "kind": "secrets"}


def test_rbac_denials_for_apps_and_cluster_scope(client, api, ns):
    api.deny(verb="patch", resource="deployments")
    body = assert_status(patch(client, deployments_path(ns, "web"), {}, MERGE), 403, "Forbidden")
    assert body["message"] == (
        f'deployments.apps "web" is forbidden: User "{DEFAULT_USER}" cannot patch resource "deployments" '
        f'in API group "apps" in the namespace "{ns}"'
    )
    api.deny(verb="list", resource="namespaces")
    body = assert_status(client.get("/api/v1/namespaces"), 403, "Forbidden")
    assert body["message"].endswith('cannot list resource "namespaces" in API group "" at the cluster scope')


def test_server_side_apply_is_authorized_as_patch_and_create(client, api, ns):
    rule = api.deny(verb="patch", resource="secrets", namespace=ns)
    body = assert_status(apply(client, secrets_path(ns, "s"), secret_config("s"), "m"), 403, "Forbidden")
    assert 'cannot patch resource "secrets"' in body["message"]
    api.allow(rule)
    rule = api.deny(verb="create", resource="secrets", namespace=ns)
    body = assert_status(apply(client, secrets_path(ns, "s"), secret_config("s"), "m"), 403, "Forbidden")
    assert (
        body["message"].startswith('secrets "s" is forbidden: ')
        and 'cannot create resource "secrets"' in body["message"]
    )
    api.allow(rule)
    assert apply(client, secrets_path(ns, "s"), secret_config("s"), "m").status_code == 201
    api.deny(verb="create", resource="secrets", namespace=ns)
    assert (
        apply(client, secrets_path(ns, "s"), secret_config("s", {"k": "v"}), "m").status_code == 200
    )  # exists: patch only


def test_denials_can_name_a_user(server, api, ns):
    api.add_token("ci-token", "system:serviceaccount:ci:deployer")
    api.deny(verb="*", resource="secrets", user="system:serviceaccount:ci:deployer")
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer ci-token"}) as ci:
        body = assert_status(ci.get(secrets_path(ns)), 403, "Forbidden")
        assert 'User "system:serviceaccount:ci:deployer" cannot list resource "secrets"' in body["message"]
        assert ci.get("/api/v1/namespaces").status_code == 200


# --------------------------------------------------------------------------- failure injection


def test_injected_429_with_retry_after(client, api, ns):
    injection = api.inject_failure("POST", r"/secrets$", 429, retry_after=2)
    response = client.post(secrets_path(ns), json={"metadata": {"name": "s"}})
    body = assert_status(response, 429, "TooManyRequests")
    assert response.headers["Retry-After"] == "2"
    assert body["details"] == {"retryAfterSeconds": 2}
    assert api.get_object("secrets", "s", ns) is None  # nothing happened
    assert injection.hits == 1 and injection.remaining == 0
    assert client.post(secrets_path(ns), json={"metadata": {"name": "s"}}).status_code == 201


def test_injected_server_errors_count_down(client, api, ns):
    api.inject_failure("GET", rf"/namespaces/{ns}/secrets/", 503, times=2)
    api.inject_failure("*", rf"/namespaces/{ns}/secrets/other", 500)
    make_secret(client, ns, "s")
    assert_status(client.get(secrets_path(ns, "s")), 503, "ServiceUnavailable")
    assert_status(client.get(secrets_path(ns, "s")), 503, "ServiceUnavailable")
    assert client.get(secrets_path(ns, "s")).status_code == 200
    assert client.get(secrets_path(ns)).status_code == 200  # path does not match
    assert_status(client.delete(secrets_path(ns, "other")), 500, "InternalError")
    assert_status(client.delete(secrets_path(ns, "other")), 404, "NotFound")


def test_unlimited_injection_and_clearing(client, api, ns):
    api.inject_failure("get", r"^/api/v1/namespaces$", 504, times=None, message="slow down")
    for _ in range(3):
        assert assert_status(client.get("/api/v1/namespaces"), 504, "Timeout")["message"] == "slow down"
    api.clear_failures()
    assert client.get("/api/v1/namespaces").status_code == 200


# --------------------------------------------------------------------------- request log, latency


def test_request_log_counts_writes(server, client, ns):
    created = make_secret(client, ns, "s", {"a": "1"})
    server.requests.clear()
    client.get(secrets_path(ns, "s"), params={"labelSelector": "a=b"})
    client.put(secrets_path(ns, "s"), json=created)
    assert server.requests == [
        RecordedRequest("GET", secrets_path(ns, "s"), "labelSelector=a%3Db"),
        RecordedRequest("PUT", secrets_path(ns, "s"), ""),
    ]
    assert server.write_requests == [("PUT", secrets_path(ns, "s"), "")]
    server.requests.clear()
    client.get(secrets_path(ns))
    assert server.write_requests == []


def test_latency_is_added_to_every_request(server, client):
    server.latency = 0.05
    started = time.perf_counter()
    assert client.get("/api/v1/namespaces/default").status_code == 200
    assert time.perf_counter() - started >= 0.05


# --------------------------------------------------------------------------- direct access, lifecycle


def test_direct_access_without_http(api, ns):
    before = len(api.requests)
    created = api.create_object("secrets", {"metadata": {"name": "seeded"}, "stringData": {"k": "v"}}, ns)
    assert created["metadata"]["managedFields"][0]["manager"] == "strongroom-test-fixture"
    assert api.secret_data("seeded", ns) == {"k": b"v"}
    assert [s["metadata"]["name"] for s in api.list_objects("secrets", ns)] == ["seeded"]
    with pytest.raises(KubeAPIError) as caught:
        api.create_object("secrets", {"metadata": {"name": "seeded"}}, ns)
    assert caught.value.code == 409 and caught.value.reason == "AlreadyExists"
    api.delete_object("secrets", "seeded", ns)
    assert api.get_object("secrets", "seeded", ns) is None and api.secret_data("seeded", ns) is None
    assert len(api.requests) == before  # direct calls are not HTTP requests
    with pytest.raises(ValueError, match="unknown resource"):
        api.get_object("configmaps", "x", ns)


def test_count_requests_and_reset():
    api = FakeKubernetesAPI(namespaces=["a"], latency=0.01)
    api.handle("GET", "/api/v1/namespaces", headers={"Authorization": "Bearer test-token"})
    api.handle("POST", "/api/v1/namespaces/a/secrets", headers={"Authorization": "Bearer test-token"}, body=b"{}")
    api.handle("GET", "/api/v1/namespaces/a/secrets", headers={"Authorization": "Bearer test-token"})
    assert api.count_requests() == 3
    assert api.count_requests("get") == 2
    assert api.count_requests(path_regex=r"/secrets$") == 2
    assert api.count_requests("POST", r"/secrets$") == 1
    api.create_namespace("b")
    api.add_token("other", "someone")
    api.deny("get")
    api.inject_failure("*", ".", 500, times=None)
    api.latency = 1.0
    version = int(api.resource_version)
    api.reset()
    assert [n["metadata"]["name"] for n in api.list_objects("namespaces")] == ["a"]
    assert api.requests == [] and api.latency == 0.01
    assert int(api.resource_version) > version
    assert api.handle("GET", "/api/v1/namespaces/a", headers={"Authorization": "Bearer test-token"}).status == 200
    assert api.handle("GET", "/api/v1/namespaces/a", headers={"Authorization": "Bearer other"}).status == 401


def test_servers_are_independent_and_stop_cleanly(tmp_path):
    api = FakeKubernetesAPI(token=None, namespaces=["only"])
    server = KubeAPIServer(api, latency=0.0)
    with pytest.raises(RuntimeError):
        _ = server.url
    with server:
        url = server.url
        response = httpx.get(url + "/api/v1/namespaces")  # authentication is off
        assert [i["metadata"]["name"] for i in response.json()["items"]] == ["only"]
        assert server.api is api
    server.stop()  # idempotent
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/api/v1/namespaces", timeout=1)


def test_write_kubeconfig(server, tmp_path):
    path = server.write_kubeconfig(tmp_path / "nested" / "kubeconfig", context="ctx", token="tok")
    assert path == tmp_path / "nested" / "kubeconfig"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert config["current-context"] == "ctx"
    assert config["clusters"] == [{"name": "ctx", "cluster": {"server": server.url, "insecure-skip-tls-verify": True}}]
    assert config["users"] == [{"name": "ctx", "user": {"token": "tok"}}]
    assert config["contexts"][0]["context"] == {"cluster": "ctx", "user": "ctx", "namespace": "default"}


# --------------------------------------------------------------------------- real clients


def test_official_kubernetes_client(server, ns, tmp_path, monkeypatch):
    from kubernetes import client as k8s
    from kubernetes import config
    from kubernetes.client.rest import ApiException

    monkeypatch.setattr(k8s.Configuration, "_default", None)  # restored after the test
    config.load_kube_config(config_file=str(server.write_kubeconfig(tmp_path / "kubeconfig")))
    core = k8s.CoreV1Api()
    secret = k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name="app-env", labels={"app.kubernetes.io/managed-by": "strongroom"}),
        string_data={"DATABASE_URL": "postgres://db"},
    )
    created = core.create_namespaced_secret(ns, secret)
    assert created.data == {"DATABASE_URL": b64("postgres://db")}
    read = core.read_namespaced_secret("app-env", ns)
    assert read.metadata.uid == created.metadata.uid and read.type == "Opaque"
    listed = core.list_namespaced_secret(ns, label_selector="app.kubernetes.io/managed-by=strongroom")
    assert [item.metadata.name for item in listed.items] == ["app-env"]
    assert core.list_namespaced_secret(ns, label_selector="app.kubernetes.io/managed-by!=strongroom").items == []
    read.data = {"DATABASE_URL": b64("postgres://new")}
    replaced = core.replace_namespaced_secret("app-env", ns, read)
    assert int(replaced.metadata.resource_version) > int(read.metadata.resource_version)
    read.data = {"DATABASE_URL": b64("postgres://stale")}
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_secret("app-env", ns, read)  # read.metadata.resource_version is stale now
    assert caught.value.status == 409
    assert json.loads(caught.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_secret("absent", ns)
    assert missing.value.status == 404
    core.delete_namespaced_secret("app-env", ns)
    assert core.list_namespaced_secret(ns).items == []


def test_lightkube_client(server, api, ns, tmp_path):
    from lightkube import ApiError, Client, KubeConfig
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Secret

    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", namespace=ns)
    lk = Client(config=KubeConfig.from_file(kubeconfig))
    created = lk.create(Secret(metadata=ObjectMeta(name="lk", labels={"a": "b"}), stringData={"K": "v"}))
    assert created.data == {"K": b64("v")}
    got = lk.get(Secret, "lk")
    assert got.metadata.labels == {"a": "b"}
    applied = lk.apply(
        Secret(metadata=ObjectMeta(name="lk2", namespace=ns), stringData={"X": "1"}), field_manager="strongroom"
    )
    assert applied.data == {"X": b64("1")}
    assert applied.metadata.managedFields[0].manager == "strongroom"
    reapplied = lk.apply(
        Secret(metadata=ObjectMeta(name="lk2", namespace=ns), stringData={"X": "1", "Y": "2"}),
        field_manager="strongroom",
    )
    assert api.secret_data("lk2", ns) == {"X": b"1", "Y": b"2"}
    assert int(reapplied.metadata.resourceVersion) > int(applied.metadata.resourceVersion)
    with pytest.raises(ApiError) as caught:
        lk.apply(Secret(metadata=ObjectMeta(name="lk2", namespace=ns), stringData={"X": "other"}), field_manager="bob")
    assert caught.value.status.code == 409
    assert [s.metadata.name for s in lk.list(Secret, namespace=ns)] == ["lk", "lk2"]
    lk.delete(Secret, "lk")
    with pytest.raises(ApiError) as missing:
        lk.get(Secret, "lk")
    assert missing.value.status.code == 404

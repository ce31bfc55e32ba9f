"""The rotation catalog: the format and its diagnostics, schedules, dates, ``catalog ls`` and ``rotation status``."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from strongroom.cli import app as cli_app
from strongroom.cli.context import AppContext
from strongroom.errors import DefinitionError
from strongroom.language import Compiled, compile_definition
from strongroom.language.compiler import CACHE_VERSION
from strongroom.model import EnvRef
from strongroom.rotation.catalog import (
    DUE_SOON,
    OK,
    ON_EVENT,
    OVERDUE,
    collapse,
    importers,
    read_catalog,
    rotation_status,
)
from strongroom.rotation.schedule import ScheduleError, next_due, parse_duration, parse_schedule
from strongroom.service import Service

EXAMPLE = Path(__file__).parent.parent / "examples" / "aphiria" / "environments"
ENV = EnvRef("acme", "prod")
T0 = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def environ(tmp_path) -> dict[str, str]:
    return {
        "STRONGROOM_HOME": str(tmp_path / "home"),
        "STRONGROOM_MASTER_KEY": base64.b64encode(os.urandom(32)).decode("ascii"),
        "STRONGROOM_ACTOR": "tester",
    }


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def make_service(environ, clock) -> Iterator[Callable[[], Service]]:
    made: list[Service] = []
    app = AppContext(environ)
    app.open_store(create=True).close()

    def make() -> Service:
        svc = Service(app.open_store(), load_keyring=lambda s: app.key_provider(s).load(), actor="tester", clock=clock)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


@pytest.fixture
def service(make_service) -> Service:
    svc = make_service()
    svc.initialise_keys()
    return svc


@pytest.fixture
def run(environ, monkeypatch) -> Callable[..., object]:
    monkeypatch.setitem(cli_app._LAZY, "catalog", ("strongroom.cli.catalog", "catalog"))
    monkeypatch.setitem(cli_app._LAZY, "rotation", ("strongroom.cli.rotation", "rotation"))

    def invoke(*args: str) -> object:
        return CliRunner().invoke(cli_app.cli, list(args), env=environ, catch_exceptions=False)

    return invoke


def load_example(service: Service) -> None:
    for name in ("base", "Preview", "Production"):
        service.create_environment(EnvRef("aphiria.com", name), (EXAMPLE / f"{name}.yaml").read_text())


# --------------------------------------------------------------------------- the format


DEFINITION = """values:
  pulumiConfig:
    "postgresql:password": {fn::secret: CANARY-pw}
  api: {token: {fn::secret: CANARY-token}}
rotation:
  pulumiConfig["postgresql:password"]:
    purpose: PostgreSQL admin password
    owner: dba@example.com
    usedBy: [api, db-env-var-secrets]
    schedule: quarterly
    rotator: {postgresql: {user: aphiria}}
  api.token:
    purpose: API bearer token
    schedule: every 30d
    rotator: {random: {bytes: 32, encoding: hex}}
    procedure: {url: "https://example.com/tokens", scopes: [read], prefix: tok_, revokeUrl: "https://example.com/revoke"}
    lastRotated: 2025-01-01
"""


def test_rotation_block_is_accepted_and_cached_as_plain_json() -> None:
    compiled = compile_definition(DEFINITION, "acme/prod")
    assert compiled.diagnostics == ()
    assert set(compiled.rotation or {}) == {'pulumiConfig["postgresql:password"]', "api.token"}
    data = compiled.to_json()
    assert json.loads(data)["v"] == CACHE_VERSION == 2
    again = Compiled.from_json(data)
    assert again.rotation == compiled.rotation
    assert again.rotation is not None and again.rotation["api.token"]["lastRotated"] == "2025-01-01"
    assert "CANARY" not in json.dumps(compiled.rotation)


def test_path_written_differently_is_canonical() -> None:
    text = 'rotation:\n  pulumiConfig."a:b": {schedule: annually}\n'
    assert set(compile_definition(text, "p/e").rotation or {}) == {'pulumiConfig["a:b"]'}


@pytest.mark.parametrize(
    ("entry", "summary", "line", "column"),
    [
        ('  "a[": {schedule: annually}\n', "invalid path 'a['", 3, 3),
        ("  a:\n    schedule: fortnightly\n", "unknown schedule 'fortnightly'", 4, 15),
        (
            "  a:\n    schedule: annually\n    purpse: x\n",
            'unknown rotation field "purpse"; did you mean "purpose"?',
            5,
            5,
        ),
        ("  a:\n    purpose: x\n", "a rotation entry needs a schedule", 3, 3),
        ("  a:\n    schedule: annually\n    usedBy: {x: 1}\n", "usedBy must be a list of strings", 5, 13),
        ("  a:\n    schedule: '61 * * * *'\n", "cron field '61' is out of range 0-59", 4, 15),
        ("  a:\n    schedule: annually\n    lastRotated: yesterday\n", "lastRotated 'yesterday' is not a date", 5, 18),
        (
            "  a:\n    schedule: annually\n    procedure: {urll: x}\n",
            'unknown procedure field "urll"; did you mean "url"?',
            5,
            17,
        ),
        ("  a:\n    schedule: annually\n    rotator: {random: {bytes: 4}}\n", "bytes must be a whole number", 5, 31),
    ],
)
def test_malformed_entries_are_errors_with_line_and_column(entry, summary, line, column) -> None:
    compiled = compile_definition("values: {a: 1}\nrotation:\n" + entry, "p/e")
    errors = [d for d in compiled.diagnostics if d.is_error]
    assert len(errors) == 1, compiled.diagnostics
    assert errors[0].summary.startswith(summary)
    assert (errors[0].line, errors[0].column) == (line, column)
    assert errors[0].path.startswith("rotation[")
    assert not compiled.rotation


def test_unknown_rotator_is_a_warning_not_an_error() -> None:
    compiled = compile_definition("rotation:\n  a: {schedule: annually, rotator: {vault: {}}}\n", "p/e")
    assert [d.severity for d in compiled.diagnostics] == ["warning"]
    assert compiled.rotation == {"a": {"schedule": "annually", "rotator": {"vault": {}}}}


def test_rotation_must_be_a_mapping_and_is_no_longer_an_unknown_key() -> None:
    assert compile_definition("rotation: 3\n", "p/e").diagnostics[0].summary.startswith("`rotation` must be a mapping")
    assert compile_definition("rotation: {}\n", "p/e").diagnostics == ()


def test_service_refuses_a_malformed_catalog(service) -> None:
    with pytest.raises(DefinitionError):
        service.create_environment(ENV, "rotation:\n  a: {schedule: sometimes}\n")


def test_old_cache_versions_are_read_by_recompiling(service, monkeypatch) -> None:
    service.create_environment(ENV, DEFINITION)
    raw = json.loads(service.store.get_revision(ENV).compiled)
    raw["v"] = 1  # what a store from before the rotation block holds
    del raw["rotation"]
    real = service.store.get_revision

    def old_revision(ref, number=None):  # type: ignore[no-untyped-def]
        return dataclasses.replace(real(ref, number), compiled=json.dumps(raw))

    monkeypatch.setattr(service.store, "get_revision", old_revision)
    assert {i.entry.path for i in read_catalog(service)} == {'pulumiConfig["postgresql:password"]', "api.token"}


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    ("schedule", "last", "due"),
    [
        ("annually", "2025-01-31T12:00", "2026-01-31T12:00"),
        ("quarterly", "2024-11-30T00:00", "2025-02-28T00:00"),
        ("monthly", "2025-01-31T00:00", "2025-02-28T00:00"),
        ("monthly", "2024-01-31T00:00", "2024-02-29T00:00"),
        ("every 30d", "2025-01-01T00:00", "2025-01-31T00:00"),
        ("every 2w", "2025-01-01T00:00", "2025-01-15T00:00"),
        ("0 3 1 * *", "2025-01-15T10:00", "2025-02-01T03:00"),
        ("0 3 1 * *", "2025-02-01T03:00", "2025-03-01T03:00"),
        ("30 9 * * 1", "2025-01-31T12:00", "2025-02-03T09:30"),  # next Monday
        ("0 0 1 1,7 *", "2025-01-31T12:00", "2025-07-01T00:00"),
        ("0 0 13 * 5", "2025-01-31T12:00", "2025-02-07T00:00"),  # day 13 OR Friday
        ("*/15 * * * *", "2025-01-31T12:07", "2025-01-31T12:15"),
    ],
)
def test_next_due(schedule, last, due) -> None:
    last_at = datetime.fromisoformat(last).replace(tzinfo=UTC)
    assert next_due(parse_schedule(schedule), last_at) == datetime.fromisoformat(due).replace(tzinfo=UTC)


@pytest.mark.parametrize("schedule", ["never", "N/A", "when: the OAuth app is rotated", {"when": "provider changes"}])
def test_never_and_events_have_no_due_date(schedule) -> None:
    parsed = parse_schedule(schedule)
    assert parsed.kind in ("never", "event")
    assert next_due(parsed, T0) is None


def test_cron_that_never_fires_has_no_due_date() -> None:
    assert next_due(parse_schedule("0 0 31 2 *"), T0) is None


@pytest.mark.parametrize(
    "bad", ["fortnightly", "every 0d", "every 3y", "* * * *", "a b c d e", "when:", 7, {"if": "x"}]
)
def test_bad_schedules(bad) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(bad)


def test_schedule_display_matches_the_runbook() -> None:
    assert parse_schedule("annually").display() == "Annually"
    assert parse_schedule("never").display() == "N/A"
    assert parse_schedule("when: OAuth app is rotated").display() == "When OAuth app is rotated"


def test_durations() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("2w") == timedelta(weeks=2)
    with pytest.raises(ScheduleError):
        parse_duration("soon")


# --------------------------------------------------------------------------- last rotated and status


def test_last_rotated_from_creation_declared_date_and_history(service, clock) -> None:
    service.create_environment(ENV, DEFINITION)  # created at T0 (2025-01-31)
    items = {i.entry.path: i for i in read_catalog(service, ENV)}
    pw, token = items['pulumiConfig["postgresql:password"]'], items["api.token"]
    assert pw.last_rotated == T0 and pw.next_due == datetime(2025, 4, 30, 12, tzinfo=UTC)
    assert token.last_rotated == datetime(2025, 1, 1, tzinfo=UTC)  # declared; creation is only the fallback
    clock.now = T0 + timedelta(days=40)
    service.set_value(ENV, ("pulumiConfig", "postgresql:password"), "CANARY-new", secret=True)
    clock.now = T0 + timedelta(days=50)
    service.set_value(ENV, ("unrelated",), 1)  # another path: no effect
    items = {i.entry.path: i for i in read_catalog(service, ENV)}
    assert items['pulumiConfig["postgresql:password"]'].last_rotated == T0 + timedelta(days=40)
    assert items["api.token"].last_rotated == datetime(2025, 1, 1, tzinfo=UTC)
    clock.now = T0 + timedelta(days=60)
    service.set_value(ENV, ("api",), {"token": "x"}, plaintext_ok=True)  # setting a parent replaces it
    assert {i.entry.path: i for i in read_catalog(service, ENV)}["api.token"].last_rotated == clock.now


def test_declared_last_rotated_wins_when_newer(service, clock) -> None:
    clock.now = datetime(2024, 1, 1, tzinfo=UTC)
    service.create_environment(ENV, "rotation:\n  a: {schedule: annually, lastRotated: 2024-06-01}\n")
    (item,) = read_catalog(service, ENV)
    assert item.last_rotated == datetime(2024, 6, 1, tzinfo=UTC)
    assert item.next_due == datetime(2025, 6, 1, tzinfo=UTC)


def test_status_states(service, clock) -> None:
    service.create_environment(
        ENV,
        "rotation:\n  a: {schedule: every 10d}\n  b: {schedule: every 40d}\n  c: {schedule: every 90d}\n"
        "  d: {schedule: never}\n  e: {schedule: 'when: provider changes'}\n",
    )
    now = T0 + timedelta(days=15)
    states = {s.path: s.state for s in rotation_status(read_catalog(service), now, timedelta(days=30))}
    assert states == {"a": OVERDUE, "b": DUE_SOON, "c": OK, "d": ON_EVENT, "e": ON_EVENT}
    far = {s.path: s.state for s in rotation_status(read_catalog(service), now + timedelta(days=3650), timedelta())}
    assert far["d"] == far["e"] == ON_EVENT


def test_status_exit_codes(run, environ) -> None:
    app = AppContext(environ)
    app.open_store(create=True).close()
    svc = app.service()
    svc.initialise_keys()
    svc.create_environment(EnvRef("acme", "ok"), "rotation:\n  a: {schedule: annually}\n  b: {schedule: never}\n")
    app.close()
    result = run("rotation", "status")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "nothing is overdue" in result.output  # type: ignore[attr-defined]
    assert run("rotation", "status", "--within", "400d").exit_code == 0  # type: ignore[attr-defined]
    svc = AppContext(environ).service()
    svc.create_environment(
        EnvRef("acme", "late"), "rotation:\n  tok: {schedule: monthly, lastRotated: 2020-01-01, owner: ops}\n"
    )
    svc.close()
    result = run("rotation", "status")
    assert result.exit_code == 3  # type: ignore[attr-defined]
    assert "overdue" in result.output and "acme/late" in result.output  # type: ignore[attr-defined]
    assert run("rotation", "status", "acme/ok").exit_code == 0  # type: ignore[attr-defined]
    as_json = run("rotation", "status", "--format", "json")
    assert json.loads(as_json.output)[0]["state"] == "overdue"  # type: ignore[attr-defined]
    assert run("rotation", "status", "--within", "soon").exit_code == 2  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- catalog ls on the example

RUNBOOK_ROWS = [
    ("digitalocean:token", "DigitalOcean API access for cluster management", "Annually"),
    ("gateway:digitaloceanDnsToken", "DNS API access for cert-manager wildcard TLS (DNS-01 challenges)", "Annually"),
    (
        "namespace:imagePullSecret:token",
        "Pull private Docker images from ghcr.io (Kubernetes imagePullSecrets)",
        "Annually",
    ),
    ("namespace:imagePullSecret:username", "GitHub username for GHCR authentication", "N/A"),
    ("postgresql:user", "PostgreSQL admin user", "N/A"),
    ("postgresql:password", "PostgreSQL admin password", "Quarterly"),
    ("grafana:githubClientId", "GitHub OAuth App Client ID for Grafana authentication", "When OAuth app is rotated"),
    ("grafana:githubClientSecret", "GitHub OAuth App Client Secret for Grafana authentication", "Annually"),
    ("grafana:githubOrg", 'GitHub organization for access control (e.g., "aphiria")', "N/A"),
    ("grafana:adminUser", "GitHub username with Grafana admin privileges", "N/A"),
    ("grafana:smtpHost", "SMTP server hostname for alert emails", "When SMTP provider changes"),
    ("grafana:smtpPort", "SMTP server port (typically 587)", "N/A"),
    ("grafana:smtpUser", "SMTP authentication username", "When SMTP credentials rotate"),
    ("grafana:smtpPassword", "SMTP authentication password", "Quarterly"),
    ("grafana:smtpFromAddress", 'Email "From" address for alerts', "N/A"),
    ("grafana:alertEmail", "Email address to receive Grafana alerts", "N/A"),
    ("prometheus:authToken", "Bearer token for authenticating Prometheus to scrape /metrics endpoint", "Annually"),
    ("PULUMI_ACCESS_TOKEN", "Manage infrastructure state in Pulumi Cloud", "Annually"),
    ("WORKFLOW_DISPATCH_TOKEN", "Trigger preview deployment workflow from build workflow", "Annually"),
]


def test_example_catalog_reproduces_the_runbook(service) -> None:
    load_example(service)
    rows = collapse(read_catalog(service), importers(service))
    by_key = {r.name.removeprefix('pulumiConfig["').removesuffix('"]'): r for r in rows}
    assert len(rows) == 19
    for key, purpose, schedule in RUNBOOK_ROWS:
        row = by_key[key]
        assert (row.purpose, row.schedule) == (purpose, schedule)
    both = ("aphiria.com/Preview", "aphiria.com/Production")
    assert by_key["postgresql:password"].environments == both  # one row for both environments
    assert by_key["postgresql:user"].environments == ("aphiria.com/base",)
    assert by_key["postgresql:user"].imported_by == both
    assert by_key["PULUMI_ACCESS_TOKEN"].environments == ("aphiria.com/Production",)
    assert by_key["PULUMI_ACCESS_TOKEN"].used_by == ("preview-deploy.yml", "preview-cleanup.yml")


def test_catalog_ls_markdown_and_json(run, environ) -> None:
    app = AppContext(environ)
    app.open_store(create=True).close()
    svc = app.service()
    svc.initialise_keys()
    load_example(svc)
    app.close()
    md = run("catalog", "ls", "--format", "markdown")
    assert md.exit_code == 0  # type: ignore[attr-defined]
    out = md.output  # type: ignore[attr-defined]
    assert out.startswith("| Name | Environments | Purpose | Schedule | Used by | Last rotated | Next due |\n|---|")
    for key, purpose, schedule in RUNBOOK_ROWS:
        line = next(ln for ln in out.splitlines() if f"{key}" in ln and f"| {purpose} |" in ln)
        assert f"| {schedule} |" in line
    assert "EXAMPLE" not in out  # no value, ever
    one = json.loads(run("catalog", "ls", "aphiria.com/Preview", "--format", "json").output)  # type: ignore[attr-defined]
    assert len(one) == 8 and all(r["environments"] == ["aphiria.com/Preview"] for r in one)
    table = run("catalog", "ls")
    assert table.exit_code == 0 and "prometheus:authToken" in table.output  # type: ignore[attr-defined]

"""Rotation reminders over a real SMTP server (aiosmtpd): one per due period, across restarts, never the value."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller

from strongroom.model import EnvRef
from strongroom.rotation.catalog import read_catalog, rotation_status
from strongroom.rotation.reminders import SmtpSettings, send_reminders, smtp_sender, smtp_settings
from test_rotation_catalog import T0, Clock, clock, environ, make_service, service  # noqa: F401

ENV = EnvRef("aphiria.com", "Production")
CANARY = "CANARY-do-not-mail-7f3a9c"
DEFINITION = f"""values:
  pulumiConfig:
    "postgresql:password": {{fn::secret: {CANARY}}}
    "grafana:smtpUser": alerts@example.com
    "grafana:alertEmail": admin@example.com
rotation:
  pulumiConfig["postgresql:password"]:
    purpose: PostgreSQL admin password
    owner: dba@example.com
    schedule: quarterly
    lastRotated: 2024-10-01
    procedure: {{steps: [Run strongroom rotate], revokeUrl: "https://example.com/revoke"}}
  pulumiConfig["grafana:alertEmail"]: {{purpose: alert address, schedule: never}}
"""


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # an ephemeral port (aiosmtpd 1.4 cannot start on port 0 itself)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def remind(svc, settings, now):  # type: ignore[no-untyped-def]
    items = rotation_status(read_catalog(svc), now, timedelta(days=14))
    return send_reminders(svc, items, settings=settings, send_mail=smtp_sender(settings))


def test_one_reminder_per_due_period_over_real_smtp(make_service, service, clock, smtp) -> None:  # noqa: F811
    inbox, port = smtp
    service.create_environment(ENV, DEFINITION)
    settings = SmtpSettings(
        host="127.0.0.1", port=port, starttls=False, sender="strongroom@example.com", recipients=("ops@example.com",)
    )
    results = remind(service, settings, T0)  # due 2025-01-01, now 2025-01-31: overdue
    assert [r.outcome for r in results] == ["sent"]
    assert len(inbox.messages) == 1
    sender, rcpts, msg = inbox.messages[0]
    assert (sender, rcpts) == ("strongroom@example.com", ["ops@example.com"])
    assert (
        msg["Subject"]
        == 'Rotation overdue: pulumiConfig["postgresql:password"] in aphiria.com/Production (due 2025-01-01)'
    )
    body = msg.get_content()
    for text in ("PostgreSQL admin password", "dba@example.com", "2025-01-01", "https://example.com/revoke"):
        assert text in body
    assert CANARY not in msg.as_string()
    audit = service.store.list_audit(action="rotation.reminder")
    assert [dict(r.event.details)["due"] for r in audit] == ["2025-01-01"]

    # Again, and again from a new process (a new service on the same store): nothing new.
    assert [r.outcome for r in remind(service, settings, T0 + timedelta(days=1))] == ["already sent"]
    restarted = make_service()
    assert [r.outcome for r in remind(restarted, settings, T0 + timedelta(days=2))] == ["already sent"]
    assert len(inbox.messages) == 1

    # Rotated (written): the next due period gets its own single reminder when it comes.
    clock.now = T0 + timedelta(days=3)
    restarted.set_value(ENV, ("pulumiConfig", "postgresql:password"), "CANARY-new-value", secret=True)
    assert remind(restarted, settings, clock.now) == []
    later = clock.now + timedelta(days=85)  # within 14 days of the next due date
    assert [r.outcome for r in remind(restarted, settings, later)] == ["sent"]
    assert [r.outcome for r in remind(restarted, settings, later)] == ["already sent"]
    assert len(inbox.messages) == 2 and "Rotation due:" in inbox.messages[1][2]["Subject"]


def test_dry_run_sends_and_records_nothing(service, smtp) -> None:  # noqa: F811
    inbox, port = smtp
    service.create_environment(ENV, DEFINITION)
    settings = SmtpSettings(host="127.0.0.1", port=port, starttls=False, recipients=("ops@example.com",))
    items = rotation_status(read_catalog(service), T0, timedelta(days=14))
    results = send_reminders(service, items, settings=settings, send_mail=smtp_sender(settings), dry_run=True)
    assert [r.outcome for r in results] == ["would send"]
    assert inbox.messages == [] and service.store.list_audit(action="rotation.reminder") == []


def test_smtp_failure_records_nothing_so_the_next_run_retries(service) -> None:  # noqa: F811
    service.create_environment(ENV, DEFINITION)
    settings = SmtpSettings(host="127.0.0.1", port=1, starttls=False, recipients=("ops@example.com",), timeout=2)
    from strongroom.errors import StrongroomError

    with pytest.raises(StrongroomError, match="could not send"):
        remind(service, settings, T0)
    assert service.store.list_audit(action="rotation.reminder") == []


def test_smtp_settings_from_environment_and_store(service) -> None:  # noqa: F811
    service.create_environment(ENV, DEFINITION)
    smtp_environ = {
        "STRONGROOM_SMTP_HOST": "smtp.example.com",
        "STRONGROOM_SMTP_PORT": "2525",
        "STRONGROOM_SMTP_STARTTLS": "false",
        "STRONGROOM_SMTP_ENVIRONMENT": "aphiria.com/Production",
        "STRONGROOM_SMTP_USER_PATH": 'pulumiConfig["grafana:smtpUser"]',
        "STRONGROOM_SMTP_PASSWORD_PATH": 'pulumiConfig["postgresql:password"]',
        "STRONGROOM_SMTP_TO_PATH": 'pulumiConfig["grafana:alertEmail"]',
    }
    settings = smtp_settings(smtp_environ, service)
    assert settings is not None
    assert (settings.host, settings.port, settings.starttls) == ("smtp.example.com", 2525, False)
    assert (settings.user, settings.password) == ("alerts@example.com", CANARY)
    assert settings.recipients == ("admin@example.com",) and settings.sender == "alerts@example.com"
    assert CANARY not in repr(settings)
    assert smtp_settings({}, service) is None

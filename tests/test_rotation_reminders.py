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


# -- STARTTLS and login, and two runs at once ----------------------------------------------------

SMTP_PASSWORD = "CANARY-smtp-password-41c2"


def _self_signed(tmp_path) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A certificate for 127.0.0.1 (and its key), written to files, as a private mail relay would have."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_file), str(key_file)


@pytest.fixture
def tls_smtp(tmp_path) -> Iterator[tuple[Inbox, int, str, list[str]]]:  # type: ignore[no-untyped-def]
    """A real SMTP server that requires STARTTLS before anything, and a login (LOGIN/PLAIN) after it."""
    import ssl

    from aiosmtpd.smtp import AuthResult

    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    logins: list[str] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        logins.append(f"{mechanism}:{auth_data.login.decode()}:{session.ssl is not None}")
        ok = auth_data.login == b"alerts@example.com" and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok)

    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        yield inbox, port, cert_file, logins
    finally:
        controller.stop()


def test_starttls_and_login_over_real_smtp(service, tls_smtp) -> None:  # noqa: F811
    inbox, port, cert_file, logins = tls_smtp
    service.create_environment(ENV, DEFINITION)
    settings = smtp_settings(
        {
            "STRONGROOM_SMTP_HOST": "127.0.0.1",
            "STRONGROOM_SMTP_PORT": str(port),
            "STRONGROOM_SMTP_USER": "alerts@example.com",
            "STRONGROOM_SMTP_PASSWORD": SMTP_PASSWORD,
            "STRONGROOM_SMTP_TO": "ops@example.com",
            "STRONGROOM_SMTP_CA_FILE": cert_file,
        },
        service,
    )
    assert settings is not None and settings.starttls  # STARTTLS is the default
    assert [r.outcome for r in remind(service, settings, T0)] == ["sent"]
    assert len(inbox.messages) == 1
    assert logins and all(entry.endswith(":True") for entry in logins)  # logged in only inside TLS
    assert inbox.messages[0][0] == "alerts@example.com"


def test_starttls_refuses_an_untrusted_certificate_and_plain_is_refused(service, tls_smtp) -> None:  # noqa: F811
    from strongroom.errors import StrongroomError

    inbox, port, cert_file, logins = tls_smtp
    service.create_environment(ENV, DEFINITION)
    base = dict(host="127.0.0.1", port=port, user="alerts@example.com", password=SMTP_PASSWORD)
    untrusted = SmtpSettings(**base, starttls=True, recipients=("ops@example.com",), timeout=5)  # type: ignore[arg-type]
    with pytest.raises(StrongroomError) as caught:
        remind(service, untrusted, T0)
    assert "SSLCertVerificationError" in caught.value.message and SMTP_PASSWORD not in str(caught.value)
    plain = SmtpSettings(**base, starttls=False, recipients=("ops@example.com",), timeout=5)  # type: ignore[arg-type]
    with pytest.raises(StrongroomError, match="could not send"):
        remind(service, plain, T0)
    assert inbox.messages == [] and logins == []  # the password never went over an unencrypted line
    assert service.store.list_audit(action="rotation.reminder") == []
    # Nothing was recorded: with the right trust, the next run sends it.
    trusted = SmtpSettings(  # type: ignore[arg-type]
        **base, starttls=True, recipients=("ops@example.com",), ca_file=cert_file, timeout=5
    )
    assert [r.outcome for r in remind(service, trusted, T0)] == ["sent"]


def test_two_runs_at_once_send_one_reminder(make_service, service, smtp) -> None:  # noqa: F811
    import threading

    inbox, port = smtp
    service.create_environment(ENV, DEFINITION)
    settings = SmtpSettings(host="127.0.0.1", port=port, starttls=False, recipients=("ops@example.com",))
    services = [make_service() for _ in range(4)]
    barrier = threading.Barrier(len(services))
    outcomes: list[str] = []

    def run(svc) -> None:  # type: ignore[no-untyped-def]
        items = rotation_status(read_catalog(svc), T0, timedelta(days=14))
        barrier.wait()
        sent = send_reminders(svc, items, settings=settings, send_mail=smtp_sender(settings))
        outcomes.extend(r.outcome for r in sent)

    threads = [threading.Thread(target=run, args=(svc,)) for svc in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already sent"] * 3 + ["sent"]
    assert len(inbox.messages) == 1
    assert len(service.store.list_audit(action="rotation.reminder")) == 1

"""Rotation reminders: one e-mail (SMTP) and one audit event (``rotation.reminder``, for webhooks) per due period.

The key of a period is (environment, path, due date); once its reminder is sent the key
is written to the store's meta table, so re-running ``rotation remind`` (from cron, or
after a restart) sends nothing new until the secret's next due date. A crash between
sending the e-mail and recording it can repeat that one e-mail: at least once, never
once a day.
"""

from __future__ import annotations

__all__ = [
    "SMTP_SETTINGS",
    "ReminderResult",
    "SmtpSettings",
    "failure_message",
    "notify_failures",
    "reminder_key",
    "reminder_message",
    "send_reminders",
    "smtp_sender",
    "smtp_settings",
]

import json
import secrets
import smtplib
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING

from strongroom.errors import InvalidInputError, StrongroomError
from strongroom.language.paths import format_path, parse_path
from strongroom.model import EnvRef, RevisionRef, Secret
from strongroom.rotation.catalog import DUE_SOON, OVERDUE, StatusItem

if TYPE_CHECKING:
    from strongroom.rotation.engine import RotationResult
    from strongroom.service import Service

#: Each setting X is read from STRONGROOM_SMTP_X, or from the store: STRONGROOM_SMTP_X_PATH in
#: the environment STRONGROOM_SMTP_X_ENVIRONMENT (default: STRONGROOM_SMTP_ENVIRONMENT).
SMTP_SETTINGS = ("HOST", "PORT", "STARTTLS", "USER", "PASSWORD", "FROM", "TO", "CA_FILE")
#: How long a reminder claimed by a run that then died blocks the next run from sending it.
CLAIM_TTL = timedelta(minutes=10)
_PREFIX = "STRONGROOM_SMTP_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where reminders are mailed. The password never appears in ``repr``."""

    host: str
    port: int = 587
    starttls: bool = True
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "strongroom@localhost"
    recipients: tuple[str, ...] = ()
    timeout: float = 30.0
    ca_file: str | None = None


def smtp_settings(environ: Mapping[str, str], service: Service | None = None) -> SmtpSettings | None:
    """The SMTP settings from ``environ`` (and the store, for ``_PATH`` references); ``None`` without a host."""
    values: dict[str, str] = {}
    for name in SMTP_SETTINGS:
        literal = environ.get(_PREFIX + name)
        if literal is not None and literal != "":
            values[name] = literal
            continue
        path_text = environ.get(f"{_PREFIX}{name}_PATH")
        if not path_text:
            continue
        env_text = environ.get(f"{_PREFIX}{name}_ENVIRONMENT") or environ.get(_PREFIX + "ENVIRONMENT")
        if not env_text:
            raise InvalidInputError(
                f"{_PREFIX}{name}_PATH is set but not the environment to read it from",
                hint=f"set {_PREFIX}ENVIRONMENT (or {_PREFIX}{name}_ENVIRONMENT), e.g. aphiria.com/Production",
            )
        if service is None:
            raise InvalidInputError(f"{_PREFIX}{name}_PATH needs the store", hint="run this against a store")
        value = service.read(RevisionRef(EnvRef.parse(env_text)), parse_path(path_text), show_secrets=True)
        values[name] = value.reveal() if isinstance(value, Secret) else str(value)
    host = values.get("HOST")
    if not host:
        return None
    port_text = values.get("PORT", "587")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidInputError(f"the SMTP port {port_text!r} is not a port number", hint=f"set {_PREFIX}PORT")
    starttls_text = values.get("STARTTLS", "true").strip().lower()
    if starttls_text not in _TRUE | _FALSE:
        raise InvalidInputError(f"{_PREFIX}STARTTLS must be true or false")
    recipients = tuple(r.strip() for r in values.get("TO", "").split(",") if r.strip())
    if not recipients:
        raise InvalidInputError("reminders need a recipient", hint=f"set {_PREFIX}TO (comma-separated addresses)")
    return SmtpSettings(
        host=host,
        port=int(port_text),
        starttls=starttls_text in _TRUE,
        user=values.get("USER") or None,
        password=values.get("PASSWORD") or None,
        sender=values.get("FROM") or values.get("USER") or "strongroom@localhost",
        recipients=recipients,
        ca_file=values.get("CA_FILE") or None,
    )


def smtp_sender(settings: SmtpSettings, *, tls_context: ssl.SSLContext | None = None) -> Callable[[EmailMessage], None]:
    """Send a message over SMTP with ``smtplib`` (STARTTLS and login when configured)."""

    def send(message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout) as smtp:
                smtp.ehlo()
                if settings.starttls:
                    smtp.starttls(context=tls_context or ssl.create_default_context(cafile=settings.ca_file))
                    smtp.ehlo()
                if settings.user and settings.password:
                    smtp.login(settings.user, settings.password)
                smtp.send_message(message, from_addr=settings.sender, to_addrs=list(settings.recipients))
        except (smtplib.SMTPException, OSError) as exc:
            # Only the exception's type: a server's reply may echo what we sent.
            raise StrongroomError(
                f"could not send the reminder through {settings.host}:{settings.port} ({type(exc).__name__})",
                hint="check the STRONGROOM_SMTP_* settings; nothing was recorded, so the next run retries",
            ) from None

    return send


def reminder_key(item: StatusItem) -> str:
    """The store-meta key of one due period: ``rotation:reminded:<env>:<path>:<due date>``."""
    assert item.item.next_due is not None
    return f"rotation:reminded:{item.env}:{item.path}:{item.item.next_due.date().isoformat()}"


def reminder_message(item: StatusItem, settings: SmtpSettings | None) -> EmailMessage:
    """The reminder e-mail: what the secret is, who owns it, when it was due and how to rotate it (never its value)."""
    entry = item.item.entry
    assert item.item.next_due is not None
    due = item.item.next_due.date().isoformat()
    word = "overdue" if item.state == OVERDUE else "due"
    msg = EmailMessage()
    msg["Subject"] = f"Rotation {word}: {entry.name} in {entry.env} (due {due})"
    if settings is not None:
        msg["From"] = settings.sender
        msg["To"] = ", ".join(settings.recipients)
    lines = [
        f"The secret {entry.name} in {entry.env} is {word} for rotation (due {due}).",
        "",
        f"Path:         {entry.path}",
        f"Environment:  {entry.env}",
        f"Purpose:      {entry.purpose or '-'}",
        f"Owner:        {entry.owner or '-'}",
        f"Schedule:     {entry.schedule.display()}",
        f"Used by:      {', '.join(entry.used_by) or '-'}",
        f"Last rotated: {item.item.last_rotated.date().isoformat()}",
        f"Due:          {due}",
        f"Rotator:      {entry.rotator_name or '-'}",
    ]
    proc = entry.procedure
    if proc:
        lines += ["", "Procedure:"]
        if proc.get("url"):
            lines.append(f"  Generate at: {proc['url']}")
        if proc.get("scopes"):
            lines.append(f"  Scopes:      {', '.join(proc['scopes'])}")
        if proc.get("prefix"):
            lines.append(f"  Prefix:      {proc['prefix']}")
        if proc.get("expiry"):
            lines.append(f"  Expiry:      {proc['expiry']}")
        lines.extend(f"  {n}. {step}" for n, step in enumerate(proc.get("steps", ()), 1))
        if proc.get("revokeUrl"):
            lines.append(f"  Revoke the old one at: {proc['revokeUrl']}")
    lines += ["", "This reminder is sent once for this due date.", "-- strongroom"]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def failure_message(result: RotationResult, settings: SmtpSettings | None) -> EmailMessage:
    """The e-mail sent when a scheduled rotation fails: which step, why, when it is retried (never a value)."""
    failed_step = next((step for step, what in result.steps if what.startswith("failed")), "?")
    msg = EmailMessage()
    msg["Subject"] = f"Rotation failed: {result.path} in {result.env} (step {failed_step})"
    if settings is not None:
        msg["From"] = settings.sender
        msg["To"] = ", ".join(settings.recipients)
    retry = result.retry_at.isoformat(timespec="minutes") if result.retry_at else "-"
    lines = [
        f"Rotating {result.path} in {result.env} failed at the {failed_step} step.",
        "The current value is untouched and still in use; nothing was promoted.",
        "",
        f"Error:       {result.error or '-'}",
        f"Retried at:  {retry} (with a fresh value)",
        "",
        f"History:     strongroom rotation history {result.env} '{result.path}'",
        f"Retry now:   strongroom rotate {result.env} '{result.path}'",
        "",
        "-- strongroom",
    ]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def notify_failures(service: Service, environ: Mapping[str, str], results: Iterable[RotationResult]) -> list[str]:
    """E-mail every failed rotation when SMTP is configured in ``environ`` (the audit event
    ``rotation.failed`` already reaches webhooks). Settings that name stored values are read
    through ``service``; misconfigured settings raise.

    Returns the problems met while sending, one line each; a mail failure never hides the rotation's.
    """
    problems: list[str] = []
    failed = [r for r in results if r.outcome == "failed"]
    settings = smtp_settings(environ, service) if failed else None
    if settings is None:
        return problems
    send_mail = smtp_sender(settings)
    for result in failed:
        try:
            send_mail(failure_message(result, settings))
        except StrongroomError as exc:
            problems.append(exc.message)
    return problems


@dataclass(frozen=True, slots=True)
class ReminderResult:
    """What happened to one due secret: ``sent``, ``already sent`` or ``would send`` (dry run)."""

    item: StatusItem
    outcome: str
    emailed: bool = False


def _claimable(found: str | None, service: Service) -> bool:
    """Whether nobody sent this period's reminder: no record, an empty one, or a stale claim."""
    if not found:
        return True
    record = json.loads(found)
    if "claimed" not in record:
        return False  # sent
    return service.now() - datetime.fromisoformat(str(record["claimed"])) > CLAIM_TTL


def send_reminders(
    service: Service,
    items: Iterable[StatusItem],
    *,
    settings: SmtpSettings | None,
    send_mail: Callable[[EmailMessage], None] | None,
    dry_run: bool = False,
) -> list[ReminderResult]:
    """One reminder per due period for every overdue or due-soon item: e-mail, then audit event and meta.

    ``send_mail`` is ``None`` when e-mail is not configured (the audit event still goes to webhooks).
    An e-mail failure raises before anything is recorded, so the next run retries that reminder.
    """
    store = service.store
    results: list[ReminderResult] = []
    for item in items:
        if item.state not in (OVERDUE, DUE_SOON) or item.item.next_due is None:
            continue
        key = reminder_key(item)
        found = store.get_meta(key)
        if not _claimable(found, service):
            results.append(ReminderResult(item, "already sent"))
            continue
        if dry_run:
            results.append(ReminderResult(item, "would send", emailed=send_mail is not None))
            continue
        # Claim the period with a compare-and-set, so two runs at once send one reminder between them.
        claim = json.dumps({"claimed": service.now().isoformat(), "nonce": secrets.token_hex(8)})
        if not store.swap_meta(key, found, claim):
            results.append(ReminderResult(item, "already sent"))
            continue
        if send_mail is not None:
            try:
                send_mail(reminder_message(item, settings))
            except BaseException:
                store.swap_meta(key, claim, "")  # unclaimed: the next run tries again
                raise
        due = item.item.next_due.date().isoformat()
        event = service.event(
            "rotation.reminder",
            env=EnvRef.parse(item.env),
            details=[
                ("path", format_path(parse_path(item.path), "values")),
                ("due", due),
                ("state", item.state),
                ("email", "sent" if send_mail is not None else "not configured"),
            ],
        )
        service.record(event)
        store.set_meta(key, json.dumps({"at": event.at, "email": send_mail is not None}))
        results.append(ReminderResult(item, "sent", emailed=send_mail is not None))
    return results

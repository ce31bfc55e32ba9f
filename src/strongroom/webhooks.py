"""Webhooks: signed JSON POSTs for revisions, tag changes, deletions and (later) rotations.

The audit log is the outbox. A change and its audit record commit together, so a
webhook never misses one: the dispatcher walks each webhook's cursor along the audit
chain, queues a delivery per matching record (cursor and queue move in one
transaction), and delivers due ones with retries and exponential backoff. Writers
never wait for a receiver. Deliveries are leased before each attempt, so several
server processes can dispatch from one store without sending an event twice.

Each delivery is ``POST`` with a JSON body and headers ``X-Strongroom-Event``,
``X-Strongroom-Delivery`` and ``X-Strongroom-Signature: sha256=<hex HMAC-SHA256 of the
body under the webhook's secret>``.
"""

from __future__ import annotations

__all__ = ["EVENTS", "WebhookDispatcher", "event_for", "sign"]

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from strongroom.model import AuditRecord, WebhookRecord
from strongroom.storage.base import Store

#: Event names a webhook can subscribe to.
EVENTS = (
    "revision.created",
    "revision_tag.changed",
    "environment.deleted",
    "rotation.done",
    "rotation.failed",
    "rotation.reminder",
)
_ACTION_EVENTS = {
    "create": "revision.created",
    "write": "revision.created",
    "rollback": "revision.created",
    "tag.set": "revision_tag.changed",
    "tag.delete": "revision_tag.changed",
    "delete": "environment.deleted",
    "rotation.done": "rotation.done",
    "rotation.failed": "rotation.failed",
    "rotation.reminder": "rotation.reminder",
}
MAX_ATTEMPTS = 10
LEASE = timedelta(seconds=60)
SCAN_BATCH = 500


def event_for(record: AuditRecord) -> str | None:
    """The webhook event an audit record stands for, if any."""
    if record.event.outcome != "ok":
        return None
    return _ACTION_EVENTS.get(record.event.action)


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> timedelta:
    """5 s, 10 s, 20 s, ... at most one hour."""
    return timedelta(seconds=min(5 * 2 ** max(attempts - 1, 0), 3600))


def _payload(record: AuditRecord, event: str) -> str:
    ev = record.event
    body: dict[str, Any] = {
        "event": event,
        "environment": ev.environment,
        "revision": ev.revision,
        "actor": ev.actor,
        "at": ev.at,
        "audit_seq": record.seq,
    }
    details = dict(ev.details)
    if "tag" in details:
        body["tag"] = details["tag"]
        body["tag_action"] = "set" if ev.action == "tag.set" else "deleted"
    for key in ("change", "path", "due", "state"):
        if key in details:
            body[key] = details[key]
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


class WebhookDispatcher:
    """Queues and delivers webhook events. ``secret_of`` unwraps a webhook's signing secret."""

    def __init__(
        self,
        store: Store,
        *,
        secret_of: Callable[[WebhookRecord], bytes],
        post: Callable[[str, bytes, dict[str, str]], int],
        clock: Callable[[], datetime],
        format_time: Callable[[datetime], str],
    ) -> None:
        self._store = store
        self._secret_of = secret_of
        self._post = post
        self._clock = clock
        self._format = format_time

    def scan(self) -> int:
        """Queue deliveries for audit records past each webhook's cursor; returns how many were queued."""
        queued = 0
        for hook in self._store.list_webhooks():
            if not hook.active:
                continue
            records = self._store.list_audit(after_seq=hook.last_seq, limit=SCAN_BATCH)
            if not records:
                continue
            deliveries = []
            for rec in records:
                event = event_for(rec)
                if event is None or event not in hook.events:
                    continue
                if hook.environment is not None and rec.event.environment != hook.environment:
                    continue
                deliveries.append((rec.seq, event, _payload(rec, event)))
            moved = self._store.enqueue_deliveries(
                hook.webhook_id,
                deliveries,
                expected_last_seq=hook.last_seq,
                new_last_seq=records[-1].seq,
                at=self._format(self._clock()),
            )
            queued += len(deliveries) if moved else 0
        return queued

    def deliver_due(self, *, limit: int = 100) -> int:
        """Attempt every due delivery once; returns how many succeeded."""
        now = self._clock()
        hooks = {h.webhook_id: h for h in self._store.list_webhooks()}
        delivered = 0
        for delivery in self._store.due_deliveries(self._format(now), limit=limit):
            hook = hooks.get(delivery.webhook_id)
            if hook is None:
                continue
            if not self._store.claim_delivery(
                delivery.delivery_id, now=self._format(now), lease_until=self._format(now + LEASE)
            ):
                continue  # another process took it
            body = delivery.payload.encode("utf-8")
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "strongroom-webhooks",
                "X-Strongroom-Event": delivery.event,
                "X-Strongroom-Delivery": str(delivery.delivery_id),
                "X-Strongroom-Signature": sign(self._secret_of(hook), body),
            }
            attempts = delivery.attempts + 1
            status: int | None = None
            error: str | None = None
            try:
                status = self._post(hook.url, body, headers)
            except Exception as exc:  # a receiver's failure is recorded, never raised into the server
                error = type(exc).__name__
            ok = status is not None and 200 <= status < 300
            done = self._clock()
            if ok:
                state, next_at = "delivered", done
                delivered += 1
            elif attempts >= MAX_ATTEMPTS:
                state, next_at = "failed", done
            else:
                state, next_at = "pending", done + backoff(attempts)
            self._store.record_delivery_attempt(
                delivery.delivery_id,
                status=state,
                attempts=attempts,
                next_attempt_at=self._format(next_at),
                last_status=status,
                last_error=error if error else (None if ok else f"HTTP {status}"),
                at=self._format(done),
            )
        return delivered

    def run_once(self) -> tuple[int, int]:
        return self.scan(), self.deliver_due()


def http_post(timeout: float = 10.0) -> Callable[[str, bytes, dict[str, str]], int]:
    """A ``post`` for :class:`WebhookDispatcher` over httpx (no redirects, bounded time)."""
    import httpx

    client = httpx.Client(timeout=timeout, follow_redirects=False)

    def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        return client.post(url, content=body, headers=headers).status_code

    return post

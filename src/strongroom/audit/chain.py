"""Hash chaining of audit records: each record's hash covers its content and the hash before it.

Backends call :func:`record_hash` when they append, inside the same transaction as the
change being audited; :func:`verify` walks the chain and names the first bad record.
"""

from __future__ import annotations

__all__ = ["GENESIS", "ChainBreak", "canonical_event", "event_from_canonical", "record_hash", "verify"]

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from strongroom.model import AuditEvent, AuditRecord

#: The "previous hash" of the first record.
GENESIS = "0" * 64


def canonical_event(event: AuditEvent) -> str:
    """The event as canonical JSON (sorted keys, no spaces): what the hash covers and what is stored."""
    return json.dumps(
        {
            "action": event.action,
            "actor": event.actor,
            "at": event.at,
            "client": event.client,
            "details": dict(event.details),
            "environment": event.environment,
            "outcome": event.outcome,
            "revision": event.revision,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def event_from_canonical(text: str) -> AuditEvent:
    data = json.loads(text)
    return AuditEvent(
        at=data["at"],
        actor=data["actor"],
        action=data["action"],
        outcome=data["outcome"],
        environment=data["environment"],
        revision=data["revision"],
        client=data["client"],
        details=tuple(sorted((str(k), str(v)) for k, v in data["details"].items())),
    )


def record_hash(seq: int, prev_hash: str, canonical: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"{seq}\n{prev_hash}\n".encode())
    digest.update(canonical.encode("utf-8"))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.reason}"


def verify(records: Iterable[AuditRecord], *, head: tuple[int, str] | None = None) -> tuple[int, ChainBreak | None]:
    """Check a chain from its first record. Returns (records checked, first break or None).

    Detects an edited record (its hash no longer matches), a deleted or reordered one
    (a gap in the numbering or a ``prev_hash`` that is not the hash before it), and,
    given the stored ``head``, records cut off the end.
    """
    expected_seq = 1
    prev = GENESIS
    count = 0
    for rec in records:
        if rec.seq != expected_seq:
            what = "missing" if rec.seq > expected_seq else "out of order"
            return count, ChainBreak(expected_seq, f"record {expected_seq} is {what} (found {rec.seq} next)")
        if rec.prev_hash != prev:
            return count, ChainBreak(rec.seq, "its link to the record before it is broken (deleted or reordered)")
        if record_hash(rec.seq, rec.prev_hash, canonical_event(rec.event)) != rec.hash:
            return count, ChainBreak(rec.seq, "its content was changed after it was written")
        prev = rec.hash
        expected_seq += 1
        count += 1
    if head is not None:
        head_seq, head_hash = head
        if head_seq != count or (count and head_hash != prev):
            return count, ChainBreak(
                count + 1, f"the log ends at record {count} but the chain head says {head_seq}: records were removed"
            )
    return count, None

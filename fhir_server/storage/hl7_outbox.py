"""SQL of the outbound HL7 v2 outbox: one row per message owed to a clinic (migration 0008).

A row is inserted in the transaction of the write that makes the message owed (a verdict
version), so a committed verdict always has its messages and a rolled-back one never does.
``UNIQUE(res_type, res_id, version_id, endpoint_id)`` with ``ON CONFLICT DO NOTHING``: a
version is queued at most once per endpoint. The row holds the complete ER7 bytes and their
MSH-10, so every (re)send is byte-identical and a receiver that deduplicates on MSH-10 sees a
resend, never a new message.

``claimed_until`` is a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE``
serialises SQLite): the sender holding it is sending the row; a crashed sender's lease runs
out and another takes over. Messages to one endpoint go in order: a row is not claimed while
an older row for the same endpoint is still pending (HL7 v2 expects in-order delivery per link;
an amendment must not overtake the verdict it corrects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    exists,
    func,
    or_,
    select,
    update,
)

from fhir_server.storage import leases
from fhir_server.storage.leases import CANCELLED as CANCELLED
from fhir_server.storage.leases import DELIVERED as DELIVERED
from fhir_server.storage.leases import (
    ERROR_LENGTH,
    delivered,
    dialect_insert,
    failed_attempt,
    take,
)
from fhir_server.storage.leases import FAILED as FAILED
from fhir_server.storage.leases import PENDING as PENDING
from fhir_server.storage.leases import STATUSES as STATUSES
from fhir_server.storage.schema import PkType, metadata

# Row states (storage/leases.py, re-exported): owed, acknowledged (AA/CA), given up (AR, or
# too many rejections), dropped (the Endpoint was switched off).

hl7_outbox = Table(
    "hl7_outbox",
    metadata,
    Column("id", PkType, primary_key=True, autoincrement=True),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("endpoint_id", String(64), nullable=False),
    #: ``mllp://host:port`` when queued (the sender uses the Endpoint's current address).
    Column("address", String(512), nullable=False),
    Column("message_type", String(16), nullable=False),
    #: MSH-10 of ``message``; the ACK's MSA-2 must echo it.
    Column("control_id", String(20), nullable=False),
    Column("message", LargeBinary, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    #: Every send attempt (transport failures included).
    Column("attempts", Integer, nullable=False, default=0),
    #: Attempts the receiver answered with an error (AE/CE, wrong MSA-2, no ACK).
    Column("rejections", Integer, nullable=False, default=0),
    Column("next_attempt", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    #: MSA-1 of the last answer.
    Column("ack_code", String(2)),
    Column("last_error", Text),
    Column("claimed_until", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    UniqueConstraint("res_type", "res_id", "version_id", "endpoint_id", name="uq_hl7_outbox_key"),
    UniqueConstraint("control_id", name="uq_hl7_outbox_control_id"),
)
Index("ix_hl7_outbox_due", hl7_outbox.c.status, hl7_outbox.c.next_attempt)
Index("ix_hl7_outbox_endpoint", hl7_outbox.c.endpoint_id, hl7_outbox.c.status, hl7_outbox.c.id)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to queue: which version it reports, where it goes, its bytes and MSH-10."""

    res_type: str
    res_id: str
    version_id: int
    endpoint_id: str
    address: str
    message_type: str
    control_id: str
    message: bytes


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    res_type: str
    res_id: str
    version_id: int
    endpoint_id: str
    address: str
    message_type: str
    control_id: str
    message: bytes
    created: datetime
    attempts: int
    rejections: int
    next_attempt: datetime
    status: str
    ack_code: str | None
    last_error: str | None
    claimed_until: datetime | None
    delivered_at: datetime | None


_COLUMNS = tuple(hl7_outbox.c[name] for name in OutboxRow.__slots__)


def _row(found: Sequence[object]) -> OutboxRow:
    return OutboxRow(*found)  # type: ignore[arg-type]


def enqueue(conn: Connection, messages: Sequence[NewMessage], when: datetime) -> None:
    """Owe these messages (one already owed for the same version and endpoint is kept)."""
    if not messages:
        return
    rows = [
        {
            "res_type": m.res_type,
            "res_id": m.res_id,
            "version_id": m.version_id,
            "endpoint_id": m.endpoint_id,
            "address": m.address,
            "message_type": m.message_type,
            "control_id": m.control_id,
            "message": m.message,
            "created": when,
            "attempts": 0,
            "rejections": 0,
            "next_attempt": when,
            "status": PENDING,
        }
        for m in messages
    ]
    conn.execute(dialect_insert(conn, hl7_outbox).on_conflict_do_nothing(), rows)


def queued_before(conn: Connection, res_type: str, res_id: str, endpoint_id: str) -> bool:
    """Was an earlier version of this resource queued for this endpoint (any status)?"""
    t = hl7_outbox
    stmt = select(t.c.id).where(
        t.c.res_type == res_type, t.c.res_id == res_id, t.c.endpoint_id == endpoint_id
    )
    return conn.execute(stmt.limit(1)).first() is not None


def anything_due(conn: Connection, now: datetime) -> bool:
    """A read-only probe, so that an idle sender does not take the write lock every round."""
    t = hl7_outbox
    stmt = select(t.c.id).where(
        t.c.status == PENDING,
        t.c.next_attempt <= now,
        or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
    )
    return conn.execute(stmt.limit(1)).first() is not None


def claim(conn: Connection, now: datetime, lease: timedelta, limit: int) -> list[OutboxRow]:
    """Lease up to ``limit`` due rows, the oldest pending one per endpoint; call inside a
    write transaction."""
    t = hl7_outbox
    earlier = hl7_outbox.alias("earlier")
    blocked = exists().where(
        earlier.c.endpoint_id == t.c.endpoint_id,
        earlier.c.status == PENDING,
        earlier.c.id < t.c.id,
    )
    due = (
        select(t.c.id)
        .where(
            t.c.status == PENDING,
            t.c.next_attempt <= now,
            or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
            ~blocked,
        )
        .order_by(t.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=t)
    )
    ids = [int(i) for i in conn.execute(due).scalars()]
    if not ids:
        return []
    take(conn, t, ids, now, lease)
    rows = conn.execute(select(*_COLUMNS).where(t.c.id.in_(ids)).order_by(t.c.id)).all()
    return [_row(r) for r in rows]


def mark_delivered(conn: Connection, row_id: int, now: datetime, ack_code: str) -> None:
    delivered(conn, hl7_outbox, row_id, now, ack_code=ack_code)


def mark_failed_attempt(
    conn: Connection,
    row_id: int,
    error: str,
    next_attempt: datetime | None,
    *,
    rejected: bool,
    ack_code: str | None = None,
) -> None:
    """Count a failed attempt (``rejected``: the receiver answered); ``next_attempt`` None
    gives the row up (status failed)."""
    extra: dict[str, object] = {}
    if rejected:
        extra["rejections"] = hl7_outbox.c.rejections + 1
    if ack_code is not None:
        extra["ack_code"] = ack_code[:2]
    failed_attempt(conn, hl7_outbox, row_id, error, next_attempt, **extra)


def postpone(conn: Connection, row_id: int, next_attempt: datetime, reason: str) -> None:
    """Try later without counting an attempt (the Endpoint is suspended)."""
    t = hl7_outbox
    conn.execute(
        update(t)
        .where(t.c.id == row_id)
        .values(next_attempt=next_attempt, claimed_until=None, last_error=reason[:ERROR_LENGTH])
    )


def cancel(conn: Connection, row_id: int, reason: str) -> None:
    leases.cancel(conn, hl7_outbox, row_id, reason)


def superseded(conn: Connection, row: OutboxRow) -> bool:
    """A later version of the same resource is owed or went to the same endpoint: sending
    this one now would put a superseded verdict after its correction."""
    t = hl7_outbox
    stmt = select(t.c.id).where(
        t.c.res_type == row.res_type,
        t.c.res_id == row.res_id,
        t.c.endpoint_id == row.endpoint_id,
        t.c.version_id > row.version_id,
        t.c.status.in_((PENDING, DELIVERED)),
    )
    return conn.execute(stmt.limit(1)).first() is not None


def retry(conn: Connection, row_id: int, now: datetime) -> OutboxRow | None:
    """Owe a failed or cancelled row again, due now, with a fresh budget of rejections.

    Returns the row as it was (None: unknown). A delivered row, and one a later version
    supersedes (``superseded``), are left as they are; a pending one only becomes due now.
    """
    t = hl7_outbox
    found = conn.execute(select(*_COLUMNS).where(t.c.id == row_id).with_for_update()).first()
    if found is None:
        return None
    row = _row(found)
    if row.status == DELIVERED or superseded(conn, row):
        return row
    # claimed_until stays: a row being sent right now is not sent twice at once
    conn.execute(
        update(t).where(t.c.id == row_id).values(status=PENDING, next_attempt=now, rejections=0)
    )
    return row


def get(conn: Connection, row_id: int) -> OutboxRow | None:
    found = conn.execute(select(*_COLUMNS).where(hl7_outbox.c.id == row_id)).first()
    return None if found is None else _row(found)


def rows(
    conn: Connection,
    status: str | None = None,
    res_id: str | None = None,
    limit: int = 100,
) -> list[OutboxRow]:
    """Newest first; optionally only one status or one resource."""
    t = hl7_outbox
    stmt = select(*_COLUMNS)
    if status is not None:
        stmt = stmt.where(t.c.status == status)
    if res_id is not None:
        stmt = stmt.where(t.c.res_id == res_id)
    return [_row(r) for r in conn.execute(stmt.order_by(t.c.id.desc()).limit(limit)).all()]


def counts(conn: Connection) -> dict[str, int]:
    t = hl7_outbox
    found = conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
    return {str(s): int(n) for s, n in found}

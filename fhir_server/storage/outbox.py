"""SQL of the subscription outbox: one row per notification owed (docs/subscriptions.md).

A row is inserted in the transaction of the write that triggers it, so a committed change
always has its notification and a rolled-back one never does. ``UNIQUE(subscription, type,
id, version)`` with ``ON CONFLICT DO NOTHING`` means a version is notified at most once per
subscription. ``claimed_until`` is a lease: the delivery worker holding it is sending the row
(claimed with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
serialises claimers), and a crashed worker's lease runs out so another takes over.
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
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    or_,
    select,
)

from fhir_server.storage import leases
from fhir_server.storage.leases import CANCELLED as CANCELLED
from fhir_server.storage.leases import DELIVERED as DELIVERED
from fhir_server.storage.leases import ERROR_LENGTH as ERROR_LENGTH
from fhir_server.storage.leases import FAILED as FAILED
from fhir_server.storage.leases import PENDING as PENDING
from fhir_server.storage.leases import (
    delivered,
    dialect_insert,
    failed_attempt,
    take,
)
from fhir_server.storage.schema import PkType, metadata

subscription_outbox = Table(
    "subscription_outbox",
    metadata,
    Column("id", PkType, primary_key=True, autoincrement=True),
    Column("subscription_id", String(64), nullable=False),
    Column("res_type", String(64), nullable=False),
    Column("res_id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("last_error", Text),
    Column("claimed_until", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
    UniqueConstraint(
        "subscription_id", "res_type", "res_id", "version_id", name="uq_subscription_outbox_key"
    ),
)
Index(
    "ix_subscription_outbox_due", subscription_outbox.c.status, subscription_outbox.c.next_attempt
)

#: Who created a Subscription (the authorised client), for "a subscriber only receives what
#: its client may read" once access rules exist.
subscription_owners = Table(
    "subscription_owners",
    metadata,
    Column("subscription_id", String(64), primary_key=True),
    Column("client_id", String(255), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    subscription_id: str
    res_type: str
    res_id: str
    version_id: int
    attempts: int


def enqueue(
    conn: Connection,
    subscription_ids: Sequence[str],
    res_type: str,
    res_id: str,
    version_id: int,
    when: datetime,
) -> None:
    """Owe one notification per subscription for this version (a repeat is a no-op)."""
    if not subscription_ids:
        return
    rows = [
        {
            "subscription_id": sid,
            "res_type": res_type,
            "res_id": res_id,
            "version_id": version_id,
            "created": when,
            "attempts": 0,
            "next_attempt": when,
            "status": PENDING,
        }
        for sid in subscription_ids
    ]
    conn.execute(dialect_insert(conn, subscription_outbox).on_conflict_do_nothing(), rows)


def record_owner(conn: Connection, subscription_id: str, client_id: str, when: datetime) -> None:
    """Keep the first client that wrote this Subscription (later writers do not take it)."""
    stmt = dialect_insert(conn, subscription_owners).on_conflict_do_nothing()
    conn.execute(
        stmt, {"subscription_id": subscription_id, "client_id": client_id, "created": when}
    )


def owner(conn: Connection, subscription_id: str) -> str | None:
    found = conn.execute(
        select(subscription_owners.c.client_id).where(
            subscription_owners.c.subscription_id == subscription_id
        )
    ).scalar_one_or_none()
    return None if found is None else str(found)


def claim(conn: Connection, now: datetime, lease: timedelta, limit: int) -> list[OutboxRow]:
    """Take a lease on up to ``limit`` due rows; call inside a write transaction."""
    t = subscription_outbox
    due = (
        select(t.c.id)
        .where(
            t.c.status == PENDING,
            t.c.next_attempt <= now,
            or_(t.c.claimed_until.is_(None), t.c.claimed_until < now),
        )
        .order_by(t.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = [int(i) for i in conn.execute(due).scalars()]
    if not ids:
        return []
    take(conn, t, ids, now, lease)
    rows = conn.execute(
        select(t.c.id, t.c.subscription_id, t.c.res_type, t.c.res_id, t.c.version_id, t.c.attempts)
        .where(t.c.id.in_(ids))
        .order_by(t.c.id)
    ).all()
    return [OutboxRow(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]


def mark_delivered(conn: Connection, row_id: int, now: datetime) -> None:
    delivered(conn, subscription_outbox, row_id, now)


def mark_failed_attempt(
    conn: Connection, row_id: int, error: str, next_attempt: datetime | None
) -> None:
    """Count a failed attempt; ``next_attempt`` None gives the row up (status failed)."""
    failed_attempt(conn, subscription_outbox, row_id, error, next_attempt)


def cancel(conn: Connection, row_id: int, reason: str) -> None:
    leases.cancel(conn, subscription_outbox, row_id, reason)


@dataclass(frozen=True, slots=True)
class Status:
    """Counts of a subscription's outbox rows per state, and the newest error."""

    counts: dict[str, int]
    last_error: str | None


def status(conn: Connection, subscription_id: str) -> Status:
    t = subscription_outbox
    counts = {
        str(s): int(n)
        for s, n in conn.execute(
            select(t.c.status, func.count())
            .where(t.c.subscription_id == subscription_id)
            .group_by(t.c.status)
        ).all()
    }
    last = conn.execute(
        select(t.c.last_error)
        .where(t.c.subscription_id == subscription_id, t.c.last_error.is_not(None))
        .order_by(t.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    return Status(counts, None if last is None else str(last))

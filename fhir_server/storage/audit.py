"""The append-only audit trail: one row per AuditEvent plus one row per entity it names.

Only ``insert_events`` writes; there is deliberately no update or delete here, and the
migration (0005) adds triggers that refuse UPDATE and DELETE on both stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    select,
)

from fhir_server.storage.bulk import write_rows
from fhir_server.storage.schema import PkType, metadata

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", PkType, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("recorded", DateTime(timezone=True), nullable=False),
    Column("client", String(255), nullable=False),
    Column("subtype", String(32), nullable=False),
    Column("action", String(1), nullable=False),
    Column("outcome", String(2), nullable=False),
    Column("status", Integer, nullable=False),
    Column("entity", String(255)),
    Column("content", LargeBinary, nullable=False),
)
Index("ix_audit_events_recorded", audit_events.c.recorded)
Index("ix_audit_events_client", audit_events.c.client, audit_events.c.id)
Index("ix_audit_events_outcome", audit_events.c.outcome, audit_events.c.id)
Index("ix_audit_events_subtype", audit_events.c.subtype, audit_events.c.id)

#: Every entity reference of an event (a transaction names many), for ``entity=`` searches.
audit_entities = Table(
    "audit_event_entities",
    metadata,
    Column("event_id", String(64), nullable=False),
    Column("reference", String(255), nullable=False),
)
Index("ix_audit_event_entities_reference", audit_entities.c.reference)


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One event as stored: the indexed columns and the AuditEvent JSON bytes."""

    event_id: str
    recorded: datetime
    client: str
    subtype: str
    action: str
    outcome: str
    status: int
    references: tuple[str, ...]
    content: bytes


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of an audit search; every given filter must match (AND)."""

    client: str | None = None
    subtype: str | None = None
    action: str | None = None
    outcome: str | None = None
    entity: str | None = None
    #: (operator, instant) pairs on ``recorded``: ``>=``, ``>``, ``<=``, ``<``.
    recorded: tuple[tuple[str, datetime], ...] = ()


def _text(value: str, size: int) -> str:
    """Storable text: a request can carry NUL (PostgreSQL refuses it in text) or a lone
    surrogate (no encoding takes it); either would make the batch fail for ever."""
    cleaned = value.replace("\x00", "\ufffd")
    cleaned = cleaned.encode("utf-8", "replace").decode("utf-8")
    return cleaned[:size]


def insert_events(conn: Connection, rows: Sequence[AuditRow]) -> None:
    """Append a batch: COPY on PostgreSQL (a read's event is most of what a read writes),
    one executemany per table elsewhere."""
    if not rows:
        return
    write_rows(
        conn,
        audit_events,
        [
            {
                "event_id": r.event_id,
                "recorded": r.recorded,
                "client": _text(r.client, 255),
                "subtype": r.subtype,
                "action": r.action,
                "outcome": r.outcome,
                "status": r.status,
                "entity": _text(r.references[0], 255) if r.references else None,
                "content": r.content,
            }
            for r in rows
        ],
    )
    write_rows(
        conn,
        audit_entities,
        [
            {"event_id": r.event_id, "reference": _text(ref, 255)}
            for r in rows
            for ref in r.references
        ],
    )


def search_events(
    conn: Connection, query: AuditQuery, limit: int, before: int | None = None
) -> list[tuple[int, bytes]]:
    """(row id, JSON) newest first; ``before`` is the keyset cursor of the next page."""
    t = audit_events
    stmt = select(t.c.id, t.c.content).order_by(t.c.id.desc()).limit(limit)
    for column, value in (
        (t.c.client, query.client),
        (t.c.subtype, query.subtype),
        (t.c.action, query.action),
        (t.c.outcome, query.outcome),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if query.entity is not None:
        named = select(audit_entities.c.event_id).where(audit_entities.c.reference == query.entity)
        stmt = stmt.where(t.c.event_id.in_(named))
    ops: dict[str, Any] = {
        ">=": t.c.recorded.__ge__,
        ">": t.c.recorded.__gt__,
        "<=": t.c.recorded.__le__,
        "<": t.c.recorded.__lt__,
    }
    for op, when in query.recorded:
        stmt = stmt.where(ops[op](when))
    if before is not None:
        stmt = stmt.where(t.c.id < before)
    return [(int(row[0]), bytes(row[1])) for row in conn.execute(stmt)]


def read_event(conn: Connection, event_id: str) -> bytes | None:
    """The JSON of one event, or None."""
    stmt = select(audit_events.c.content).where(audit_events.c.event_id == event_id)
    value = conn.execute(stmt).scalar()
    return None if value is None else bytes(value)

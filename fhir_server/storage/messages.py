"""SQL of the HL7 v2 message store: every received message, its status and what it produced.

The unique key (facility, application, MSH-10) is what makes a resend recognisable; a row is
inserted with ``ON CONFLICT DO NOTHING`` so that two connections delivering the same message
at once cannot both create it, on PostgreSQL and SQLite alike. ``claimed_until`` is a lease:
whoever holds an unexpired lease is processing the message, and a crashed holder's lease runs
out so that someone else may take over.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)

from fhir_server.storage.schema import PkType, metadata

#: Longest value kept of a key column (HD and ST fields); longer values are cut to this.
KEY_LENGTH = 255

hl7_messages = Table(
    "hl7_messages",
    metadata,
    Column("id", PkType, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("sending_application", String(KEY_LENGTH)),
    Column("sending_facility", String(KEY_LENGTH)),
    Column("control_id", String(KEY_LENGTH)),
    Column("message_type", String(16)),
    Column("trigger_event", String(16)),
    Column("version", String(32)),
    Column("status", String(16), nullable=False),
    Column("error", Text),
    Column("error_code", String(16)),
    Column("error_location", String(64)),
    Column("resources", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_until", DateTime(timezone=True)),
    Column("fingerprint", String(64), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    UniqueConstraint(
        "sending_facility", "sending_application", "control_id", name="uq_hl7_messages_key"
    ),
)
Index("ix_hl7_messages_status", hl7_messages.c.status, hl7_messages.c.updated_at)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A row to insert; ``control_id`` None means the message cannot be deduplicated."""

    raw: bytes
    fingerprint: str
    transport: str
    received_at: datetime
    status: str
    sending_application: str | None = None
    sending_facility: str | None = None
    control_id: str | None = None
    message_type: str | None = None
    trigger_event: str | None = None
    version: str | None = None
    claimed_until: datetime | None = None
    error: str | None = None
    error_code: str | None = None
    error_location: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One row; ``raw`` is empty unless it was asked for."""

    id: int
    received_at: datetime
    updated_at: datetime
    transport: str
    sending_application: str | None
    sending_facility: str | None
    control_id: str | None
    message_type: str | None
    trigger_event: str | None
    version: str | None
    status: str
    error: str | None
    error_code: str | None
    error_location: str | None
    attempts: int
    claimed_until: datetime | None
    fingerprint: str
    resources: list[str] = field(default_factory=list)
    raw: bytes = b""


_SUMMARY = [c for c in hl7_messages.c if c.name != "raw"]


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _row(row: Any, with_raw: bool) -> StoredMessage:
    received = as_utc(row.received_at)
    updated = as_utc(row.updated_at)
    assert received is not None and updated is not None
    return StoredMessage(
        id=row.id,
        received_at=received,
        updated_at=updated,
        transport=row.transport,
        sending_application=row.sending_application,
        sending_facility=row.sending_facility,
        control_id=row.control_id,
        message_type=row.message_type,
        trigger_event=row.trigger_event,
        version=row.version,
        status=row.status,
        error=row.error,
        error_code=row.error_code,
        error_location=row.error_location,
        attempts=row.attempts,
        claimed_until=as_utc(row.claimed_until),
        fingerprint=row.fingerprint,
        resources=json.loads(row.resources) if row.resources else [],
        raw=bytes(row.raw) if with_raw else b"",
    )


def _columns(with_raw: bool) -> Sequence[Any]:
    return list(hl7_messages.c) if with_raw else _SUMMARY


_INSERTED = (
    "raw",
    "fingerprint",
    "transport",
    "received_at",
    "updated_at",
    "status",
    "sending_application",
    "sending_facility",
    "control_id",
    "message_type",
    "trigger_event",
    "version",
    "claimed_until",
    "attempts",
    "error",
    "error_code",
    "error_location",
)
# Written as text once: the same statement built with Core for every message cost ~0.5 ms
# of CPU (construction and cache key), about ten times its round trip. Bind and result
# types are the table's, so SQLite and PostgreSQL see the same values as through Core.
_INSERT = (
    text(
        f"INSERT INTO hl7_messages ({', '.join(_INSERTED)}) "
        f"VALUES ({', '.join(':' + name for name in _INSERTED)}) "
        "ON CONFLICT (sending_facility, sending_application, control_id) DO NOTHING "
        f"RETURNING {', '.join(c.name for c in _SUMMARY)}"
    )
    .bindparams(*(bindparam(name, type_=hl7_messages.c[name].type) for name in _INSERTED))
    .columns(*_SUMMARY)
)


def insert(conn: Connection, new: NewMessage) -> tuple[StoredMessage, bool]:
    """Insert unless the key is taken; the stored row and whether this call created it."""
    values = {
        "raw": new.raw,
        "fingerprint": new.fingerprint,
        "transport": new.transport,
        "received_at": new.received_at,
        "updated_at": new.received_at,
        "status": new.status,
        "sending_application": new.sending_application,
        "sending_facility": new.sending_facility,
        "control_id": new.control_id,
        "message_type": new.message_type,
        "trigger_event": new.trigger_event,
        "version": new.version,
        "claimed_until": new.claimed_until,
        "attempts": 1 if new.claimed_until is not None else 0,
        "error": new.error,
        "error_code": new.error_code,
        "error_location": new.error_location,
    }
    row = conn.execute(_INSERT, values).first()
    if row is not None:
        return _row(row, False), True
    existing = find_by_key(
        conn, new.sending_facility or "", new.sending_application or "", new.control_id or ""
    )
    assert existing is not None, "conflicting row vanished inside the transaction"
    return existing, False


def find_by_key(
    conn: Connection, facility: str, application: str, control_id: str
) -> StoredMessage | None:
    row = conn.execute(
        select(*_SUMMARY).where(
            hl7_messages.c.sending_facility == facility,
            hl7_messages.c.sending_application == application,
            hl7_messages.c.control_id == control_id,
        )
    ).first()
    return _row(row, False) if row is not None else None


def get(conn: Connection, message_id: int, with_raw: bool = False) -> StoredMessage | None:
    row = conn.execute(select(*_columns(with_raw)).where(hl7_messages.c.id == message_id)).first()
    return _row(row, with_raw) if row is not None else None


def _free(now: datetime) -> Any:
    return or_(hl7_messages.c.claimed_until.is_(None), hl7_messages.c.claimed_until < now)


def claim(
    conn: Connection,
    message_id: int,
    now: datetime,
    until: datetime,
    statuses: Sequence[str] | None = None,
) -> bool:
    """Take the lease when nobody holds it (and the status is one of ``statuses``)."""
    stmt = (
        update(hl7_messages)
        .where(hl7_messages.c.id == message_id, _free(now))
        .values(
            claimed_until=until,
            attempts=hl7_messages.c.attempts + 1,
            updated_at=now,
        )
    )
    if statuses is not None:
        stmt = stmt.where(hl7_messages.c.status.in_(list(statuses)))
    return conn.execute(stmt).rowcount == 1


_STATUS_SET = (
    "status",
    "updated_at",
    "error",
    "error_code",
    "error_location",
    "resources",
)
_SET_STATUS = {
    release: text(
        f"UPDATE hl7_messages SET {', '.join(f'{name} = :{name}' for name in _STATUS_SET)}"
        + (", claimed_until = NULL" if release else "")
        + " WHERE id = :id"
    ).bindparams(
        *(bindparam(name, type_=hl7_messages.c[name].type) for name in _STATUS_SET),
        bindparam("id", type_=hl7_messages.c.id.type),
    )
    for release in (True, False)
}


def set_status(
    conn: Connection,
    message_id: int,
    status: str,
    now: datetime,
    *,
    error: str | None = None,
    error_code: str | None = None,
    error_location: str | None = None,
    resources: Sequence[str] | None = None,
    release: bool = True,
) -> None:
    """Record an outcome; ``release`` gives up the lease (the work is done)."""
    values: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "updated_at": now,
        "error": error,
        "error_code": error_code,
        "error_location": error_location,
        "resources": json.dumps(list(resources)) if resources is not None else None,
    }
    conn.execute(_SET_STATUS[release], values)


def by_status(
    conn: Connection, status: str, limit: int = 100, with_raw: bool = False
) -> list[StoredMessage]:
    rows = conn.execute(
        select(*_columns(with_raw))
        .where(hl7_messages.c.status == status)
        .order_by(hl7_messages.c.id)
        .limit(limit)
    )
    return [_row(r, with_raw) for r in rows]


def ids_by_status(conn: Connection, status: str) -> list[int]:
    rows = conn.execute(
        select(hl7_messages.c.id).where(hl7_messages.c.status == status).order_by("id")
    )
    return [int(r.id) for r in rows]


def unclaimed(conn: Connection, status: str, now: datetime, limit: int = 1000) -> list[int]:
    """Messages in ``status`` whose lease is free or expired (work a crash left behind)."""
    rows = conn.execute(
        select(hl7_messages.c.id)
        .where(hl7_messages.c.status == status, _free(now))
        .order_by(hl7_messages.c.id)
        .limit(limit)
    )
    return [int(r.id) for r in rows]


def counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(hl7_messages.c.status, func.count()).group_by(hl7_messages.c.status))
    return {str(status): int(n) for status, n in rows}


def purge(conn: Connection, statuses: Sequence[str], before: datetime) -> int:
    """Delete messages in ``statuses`` last touched before ``before``; how many went."""
    result = conn.execute(
        delete(hl7_messages).where(
            hl7_messages.c.status.in_(list(statuses)),
            hl7_messages.c.updated_at < before,
            hl7_messages.c.claimed_until.is_(None),
        )
    )
    return int(result.rowcount)

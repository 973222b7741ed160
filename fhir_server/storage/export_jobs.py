"""SQL of the ``export_jobs`` table (migration 0007): the durable state of bulk exports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    or_,
    select,
    update,
)

from fhir_server.storage.database import Database
from fhir_server.storage.repository import as_utc

_metadata = MetaData()

export_jobs = Table(
    "export_jobs",
    _metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("request_url", Text, nullable=False),
    Column("spec", Text, nullable=False),
    Column("principal", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("transaction_time", DateTime(timezone=True)),
    Column("progress", String(255)),
    Column("output", Text),
    Column("error", Text),
)

#: Job states; ``accepted`` and ``running`` are picked up again after a restart.
ACCEPTED, RUNNING, COMPLETED, FAILED, CANCELLED = (
    "accepted",
    "running",
    "completed",
    "failed",
    "cancelled",
)
UNFINISHED = (ACCEPTED, RUNNING)


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    status: str
    request_url: str
    spec: str
    principal: str | None
    created_at: datetime
    transaction_time: datetime | None
    progress: str | None
    output: str | None
    error: str | None


def _row(r: Any) -> JobRow:
    tt = r.transaction_time
    return JobRow(
        r.id,
        r.status,
        r.request_url,
        r.spec,
        r.principal,
        as_utc(r.created_at),
        None if tt is None else as_utc(tt),
        r.progress,
        r.output,
        r.error,
    )


def insert(
    db: Database, job_id: str, request_url: str, spec: str, principal: str | None, now: datetime
) -> None:
    with db.write() as conn:
        conn.execute(
            export_jobs.insert().values(
                id=job_id,
                status=ACCEPTED,
                request_url=request_url,
                spec=spec,
                principal=principal,
                created_at=now,
                updated_at=now,
            )
        )


def get(db: Database, job_id: str) -> JobRow | None:
    with db.read() as conn:
        r = conn.execute(select(export_jobs).where(export_jobs.c.id == job_id)).first()
    return None if r is None else _row(r)


def claim(db: Database, now: datetime, stale_before: datetime) -> str | None:
    """Take the oldest job that is accepted, or running with a lapsed heartbeat (its process
    died); the conditional UPDATE makes sure only one server process runs it."""
    claimable = or_(
        export_jobs.c.status == ACCEPTED,
        and_(export_jobs.c.status == RUNNING, export_jobs.c.updated_at < stale_before),
    )
    with db.read() as conn:
        rows = conn.execute(
            select(export_jobs.c.id).where(claimable).order_by(export_jobs.c.created_at).limit(5)
        ).all()
    for r in rows:
        with db.write() as conn:
            result = conn.execute(
                update(export_jobs)
                .where(export_jobs.c.id == r.id, claimable)
                .values(status=RUNNING, updated_at=now)
            )
        if result.rowcount:
            return str(r.id)
    return None


def set_state(db: Database, job_id: str, now: datetime, **values: object) -> bool:
    """Update an unfinished job (also its heartbeat); False when it is gone (cancelled)."""
    with db.write() as conn:
        result = conn.execute(
            update(export_jobs)
            .where(export_jobs.c.id == job_id, export_jobs.c.status.in_(UNFINISHED))
            .values(updated_at=now, **values)
        )
    return bool(result.rowcount)


def remove(db: Database, job_id: str) -> bool:
    with db.write() as conn:
        result = conn.execute(delete(export_jobs).where(export_jobs.c.id == job_id))
    return bool(result.rowcount)

"""Storage faults found in review: rows a hostile request or a late worker could break."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from fhir_server.storage import outbox
from fhir_server.storage.audit import AuditRow, audit_events, insert_events
from fhir_server.storage.database import Database

NUL_EVENT = f"nul-{uuid.uuid4().hex[:8]}"


def test_audit_rows_with_nul_and_lone_surrogates_are_stored(db: Database) -> None:
    """PostgreSQL refuses NUL in text: one such request used to stop the audit trail."""
    row = AuditRow(
        NUL_EVENT,
        datetime.now(UTC),
        "c\x00",
        "read",
        "R",
        "4",
        400,
        ("Patient/a\x00b\ud800",),
        b"{}",
    )
    with db.write() as conn:
        insert_events(conn, [row])
    with db.read() as conn:
        stored = conn.execute(
            select(audit_events.c.entity).where(audit_events.c.event_id == NUL_EVENT)
        ).scalar_one()
    assert stored is not None and "\x00" not in stored and stored.startswith("Patient/a")


def test_a_late_failure_does_not_undo_a_delivery(db: Database) -> None:
    now = datetime.now(UTC)
    table = outbox.subscription_outbox
    res_id = f"late-{uuid.uuid4().hex[:8]}"
    with db.write() as conn:
        outbox.enqueue(conn, ["late-sub"], "Observation", res_id, 1, now)
        row_id = conn.execute(select(table.c.id).where(table.c.res_id == res_id)).scalar_one()
        outbox.mark_delivered(conn, row_id, now)
        outbox.mark_failed_attempt(conn, row_id, "timed out", None)  # a worker past its lease
        status = conn.execute(select(table.c.status).where(table.c.id == row_id)).scalar_one()
    assert status == outbox.DELIVERED

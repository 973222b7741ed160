"""Storage faults found in review: rows a hostile request or a late worker could break."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from fhir_server.storage import outbox
from fhir_server.storage.audit import AuditRow, audit_events, insert_events
from fhir_server.storage.database import Database


def test_audit_rows_with_nul_and_lone_surrogates_are_stored(db: Database) -> None:
    """PostgreSQL refuses NUL in text: one such request used to stop the audit trail."""
    row = AuditRow(
        "nul-event",
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
            select(audit_events.c.entity).where(audit_events.c.event_id == "nul-event")
        ).scalar_one()
    assert stored is not None and "\x00" not in stored and stored.startswith("Patient/a")


def test_a_late_failure_does_not_undo_a_delivery(db: Database) -> None:
    now = datetime.now(UTC)
    with db.write() as conn:
        outbox.enqueue(conn, ["late-sub"], "Observation", "late-obs", 1, now)
        (row,) = [
            r for r in outbox.claim(conn, now, timedelta(seconds=1), 100) if r.res_id == "late-obs"
        ]
        outbox.mark_delivered(conn, row.id, now)
        outbox.mark_failed_attempt(conn, row.id, "timed out", None)  # a worker that lost its lease
        status = conn.execute(
            select(outbox.subscription_outbox.c.status).where(
                outbox.subscription_outbox.c.id == row.id
            )
        ).scalar_one()
    assert status == outbox.DELIVERED

"""What the two outboxes (subscription notifications, HL7 v2 messages) share: row states and
the lease bookkeeping on a table with ``id``, ``status``, ``attempts``, ``next_attempt``,
``claimed_until``, ``last_error`` and ``delivered_at`` columns.

A row is owed (``pending``) until a worker that leased it (``claimed_until``) records the
receiver's acknowledgement (``delivered``), gives up (``failed``) or learns the row is no
longer wanted (``cancelled``). A crashed worker's lease runs out and another takes the row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, update
from sqlalchemy.dialects import postgresql, sqlite

#: Row states: owed, acknowledged, given up after too many failures, dropped.
PENDING, DELIVERED, FAILED, CANCELLED = "pending", "delivered", "failed", "cancelled"
STATUSES = (PENDING, DELIVERED, FAILED, CANCELLED)
#: Longest error text kept (the receiver's answer is cut to this).
ERROR_LENGTH = 1000


def dialect_insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT DO NOTHING on either store."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def take(conn: Connection, table: Table, ids: list[int], now: datetime, lease: timedelta) -> None:
    """Lease these (already selected FOR UPDATE SKIP LOCKED) rows until ``now + lease``."""
    conn.execute(update(table).where(table.c.id.in_(ids)).values(claimed_until=now + lease))


def delivered(conn: Connection, table: Table, row_id: int, now: datetime, **extra: Any) -> None:
    """The receiver acknowledged the row."""
    conn.execute(
        update(table)
        .where(table.c.id == row_id, table.c.status == PENDING)
        .values(
            status=DELIVERED,
            attempts=table.c.attempts + 1,
            delivered_at=now,
            claimed_until=None,
            last_error=None,
            **extra,
        )
    )


def failed_attempt(
    conn: Connection,
    table: Table,
    row_id: int,
    error: str,
    next_attempt: datetime | None,
    **extra: Any,
) -> None:
    """Count a failed attempt; ``next_attempt`` None gives the row up (status failed)."""
    values: dict[str, Any] = {
        "attempts": table.c.attempts + 1,
        "last_error": error[:ERROR_LENGTH],
        "claimed_until": None,
        **extra,
    }
    if next_attempt is None:
        values["status"] = FAILED
    else:
        values["next_attempt"] = next_attempt
    # Only a row still owed: a worker whose lease ran out must not undo a later result.
    conn.execute(
        update(table).where(table.c.id == row_id, table.c.status == PENDING).values(**values)
    )


def cancel(conn: Connection, table: Table, row_id: int, reason: str) -> None:
    """The row is no longer wanted (its subscription or endpoint was switched off)."""
    conn.execute(
        update(table)
        .where(table.c.id == row_id, table.c.status == PENDING)
        .values(status=CANCELLED, last_error=reason[:ERROR_LENGTH], claimed_until=None)
    )

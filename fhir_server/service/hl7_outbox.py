"""Use cases of the outbound HL7 v2 outbox: owe, claim, record, list, retry
(docs/hl7v2-outbound.md).

Owing a message (``owed_before``, ``enqueue``) happens inside the unit of the write that
makes it owed (the verdict's), so those take the ``Unit``: a committed verdict always has its
messages and a rolled-back one never does. Everything else (the sender, ``ivz hl7 outbox``)
is one transaction of its own per call, on ``Hl7OutboxService``. Knows nothing of HL7: the
adapter hands in the built bytes and MSH-10 and judges the ACKs. The SQL is in
``fhir_server/storage/hl7_outbox.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fhir_server.fhir import jsonio
from fhir_server.service.clock import now
from fhir_server.storage import hl7_outbox as sql
from fhir_server.storage import repository as repo
from fhir_server.storage.database import Database
from fhir_server.storage.hl7_outbox import (
    CANCELLED,
    DELIVERED,
    FAILED,
    PENDING,
    STATUSES,
    NewMessage,
    OutboxRow,
)

if TYPE_CHECKING:
    from fhir_server.service.resources import Unit

__all__ = [
    "CANCELLED",
    "DELIVERED",
    "FAILED",
    "PENDING",
    "STATUSES",
    "Hl7OutboxService",
    "NewMessage",
    "OutboxRow",
    "enqueue",
    "owed_before",
]


def owed_before(unit: Unit, res_type: str, res_id: str, endpoint_id: str) -> bool:
    """Was an earlier version of this resource queued for this endpoint (any status)?
    Then the new one is a correction (OBX-11 ``C``)."""
    return sql.queued_before(unit.conn, res_type, res_id, endpoint_id)


def enqueue(unit: Unit, messages: Sequence[NewMessage], when: datetime) -> None:
    """Owe these messages in ``unit``'s transaction (one already owed for the same version
    and endpoint is kept), so they commit or roll back with the write that owes them."""
    sql.enqueue(unit.conn, messages, when)


class Hl7OutboxService:
    """The outbox for the sender and the operators; each call is one committed transaction."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = now) -> None:
        self.db = db
        self.clock = clock

    def anything_due(self) -> bool:
        """A read-only probe, so that an idle sender takes no write lock every round."""
        with self.db.read(single=True) as conn:
            return sql.anything_due(conn, self.clock())

    def claim(self, lease: timedelta, limit: int) -> list[OutboxRow]:
        """Lease up to ``limit`` due rows, the oldest pending one per endpoint (in order)."""
        with self.db.write() as conn:
            return sql.claim(conn, self.clock(), lease, limit)

    def endpoints(self, endpoint_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """The current Endpoint of each id (None: deleted or never there), read together:
        the sender uses the current address and status, not the one queued with the row."""
        found: dict[str, dict[str, Any] | None] = {}
        with self.db.read() as conn:
            for endpoint_id in endpoint_ids:
                if endpoint_id in found:
                    continue
                current = repo.get_current(conn, "Endpoint", endpoint_id)
                if current is None or current.deleted or current.content is None:
                    found[endpoint_id] = None
                else:
                    found[endpoint_id] = jsonio.loads_trusted(current.content)
        return found

    def delivered(self, row_id: int, ack_code: str) -> None:
        """The receiver acknowledged it (MSA-1 AA/CA echoing our MSH-10)."""
        with self.db.write() as conn:
            sql.mark_delivered(conn, row_id, self.clock(), ack_code)

    def failed_attempt(
        self, row_id: int, error: str, retry_at: datetime | None, rejected: bool, ack: str | None
    ) -> None:
        """Count an attempt that was not acknowledged (``rejected``: the receiver answered, with
        MSA-1 ``ack``); ``retry_at`` None gives the row up (failed)."""
        with self.db.write() as conn:
            sql.mark_failed_attempt(conn, row_id, error, retry_at, rejected=rejected, ack_code=ack)

    def postpone(self, row_id: int, next_attempt: datetime, reason: str) -> None:
        """Try later without counting an attempt (the Endpoint is suspended)."""
        with self.db.write() as conn:
            sql.postpone(conn, row_id, next_attempt, reason)

    def cancel(self, row_id: int, reason: str) -> None:
        """Drop a row: its Endpoint was switched off or deleted before delivery."""
        with self.db.write() as conn:
            sql.cancel(conn, row_id, reason)

    def retry(self, row_id: int) -> OutboxRow | None:
        """Owe a failed or cancelled row again, due now; the row as it was (None: unknown).
        A delivered or superseded row is left as it is (see ``superseded``)."""
        with self.db.write() as conn:
            return sql.retry(conn, row_id, self.clock())

    def superseded(self, row: OutboxRow) -> bool:
        """A later version of the same resource is owed or went to the same endpoint."""
        with self.db.read() as conn:
            return sql.superseded(conn, row)

    def get(self, row_id: int) -> OutboxRow | None:
        with self.db.read() as conn:
            return sql.get(conn, row_id)

    def rows(self, status: str | None = None, limit: int = 100) -> list[OutboxRow]:
        """Newest first; optionally only one status."""
        with self.db.read() as conn:
            return sql.rows(conn, status, limit=limit)

    def overview(
        self, status: str | None = None, limit: int = 100
    ) -> tuple[list[OutboxRow], dict[str, int]]:
        """The rows (as ``rows``) and the count per status, read together."""
        with self.db.read() as conn:
            return sql.rows(conn, status, limit=limit), sql.counts(conn)

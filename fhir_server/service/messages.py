"""Use cases of the HL7 v2 message store: keep, deduplicate, lease, record, list, purge.

Each call is one committed transaction (a message is durable when ``store`` returns, which is
what lets the listener acknowledge it), unless the caller hands in ``conn``: then the call joins
the caller's transaction, so that storing a message, applying it and recording its outcome
commit together (``docs/hl7v2-intake.md``). Knows nothing of HL7 parsing or ACKs; the adapter
hands in what it read from MSH.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection

from fhir_server.service.clock import now
from fhir_server.storage import messages as sql
from fhir_server.storage.database import Database
from fhir_server.storage.messages import KEY_LENGTH, NewMessage, StoredMessage

__all__ = ["MessageMeta", "MessageService", "Problem", "Status", "Stored", "StoredMessage"]


class Status(StrEnum):
    RECEIVED = "received"  # stored, not (yet) processed: someone holds or will take the lease
    PROCESSED = "processed"
    FAILED = "failed"  # kept with its error until replayed or purged
    REJECTED = "rejected"  # unreadable or unsupported: never processed


#: What retention deletes by default; failed messages wait for a person.
RETAINED_BY_DEFAULT = (Status.PROCESSED, Status.REJECTED)


@dataclass(frozen=True, slots=True)
class MessageMeta:
    """The header fields the store keeps; the first three are the deduplication key."""

    sending_application: str
    sending_facility: str
    control_id: str
    message_type: str = ""
    trigger_event: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a message failed or was rejected; ``code``/``location`` let a resend repeat the ERR."""

    text: str
    code: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of ``store``: the row, whether it is new, whether the caller holds it."""

    message: StoredMessage
    created: bool
    claimed: bool
    same: bool = True


def _cut(value: str, length: int = KEY_LENGTH) -> str:
    return value[:length]


class MessageService:
    """The message store; ``lease`` is how long a processor may hold a message."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime] = now,
        lease: timedelta = timedelta(minutes=2),
    ) -> None:
        self.db = db
        self.clock = clock
        self.lease = lease

    def _new(
        self,
        raw: bytes,
        meta: MessageMeta | None,
        transport: str,
        status: Status,
        *,
        fingerprint: str | None = None,
        problem: Problem | None = None,
        claim: bool = False,
        keyed: bool = True,
    ) -> NewMessage:
        when = self.clock()
        key = keyed and meta is not None and bool(meta.control_id)
        return NewMessage(
            raw=raw,
            fingerprint=fingerprint or hashlib.sha256(raw).hexdigest(),
            transport=transport,
            received_at=when,
            status=status.value,
            sending_application=_cut(meta.sending_application) if meta and key else None,
            sending_facility=_cut(meta.sending_facility) if meta and key else None,
            control_id=_cut(meta.control_id) if meta and key else None,
            message_type=_cut(meta.message_type, 16) if meta else None,
            trigger_event=_cut(meta.trigger_event, 16) if meta else None,
            version=_cut(meta.version, 32) if meta else None,
            claimed_until=when + self.lease if claim else None,
            error=problem.text if problem else None,
            error_code=problem.code if problem else None,
            error_location=problem.location if problem else None,
        )

    @contextmanager
    def _write(self, conn: Connection | None) -> Iterator[Connection]:
        """The caller's transaction when it hands one in, else one of our own (committed)."""
        if conn is not None:
            yield conn
            return
        with self.db.write() as own:
            yield own

    def store(
        self,
        raw: bytes,
        meta: MessageMeta | None,
        transport: str,
        fingerprint: str | None = None,
        *,
        conn: Connection | None = None,
    ) -> Stored:
        """Keep a message (committed on return, or with ``conn``'s transaction); a new one is
        leased to the caller.

        A message whose key (facility, application, MSH-10) is known is not stored again: the
        first copy is returned with ``created`` False, and ``same`` tells whether its
        ``fingerprint`` matches (a resend) or not (the sender reused the control id).
        An empty MSH-10 cannot be deduplicated.
        """
        new = self._new(raw, meta, transport, Status.RECEIVED, fingerprint=fingerprint, claim=True)
        with self._write(conn) as tx:
            message, created = sql.insert(tx, new)
        same = created or message.fingerprint == new.fingerprint
        return Stored(message, created, claimed=created, same=same)

    def store_refused(
        self,
        raw: bytes,
        meta: MessageMeta | None,
        transport: str,
        problem: Problem,
        status: Status = Status.REJECTED,
        keyed: bool = True,
    ) -> Stored:
        """Keep a message refused before processing, for audit and replay.

        ``keyed`` False keeps it outside deduplication: a different message that reused a
        known key is kept that way (as failed, so that someone looks at it).
        """
        new = self._new(raw, meta, transport, status, problem=problem, keyed=keyed)
        with self.db.write() as conn:
            message, created = sql.insert(conn, new)
        return Stored(message, created, claimed=False)

    def claim(self, message_id: int, statuses: Sequence[Status] | None = None) -> bool:
        """Take the lease of a message nobody is processing (optionally only in ``statuses``)."""
        when = self.clock()
        with self.db.write() as conn:
            return sql.claim(conn, message_id, when, when + self.lease, statuses)

    def get(self, message_id: int, with_raw: bool = False) -> StoredMessage | None:
        with self.db.read(single=True) as conn:
            return sql.get(conn, message_id, with_raw)

    def find(self, facility: str, application: str, control_id: str) -> StoredMessage | None:
        """The message stored under a deduplication key."""
        with self.db.read() as conn:
            return sql.find_by_key(conn, _cut(facility), _cut(application), _cut(control_id))

    def processed(
        self, message_id: int, references: Sequence[str], conn: Connection | None = None
    ) -> None:
        """Record success and the resources written (``Type/id/_history/n``)."""
        self._finish(message_id, Status.PROCESSED, None, references, conn)

    def failed(self, message_id: int, problem: Problem, conn: Connection | None = None) -> None:
        self._finish(message_id, Status.FAILED, problem, None, conn)

    def rejected(self, message_id: int, problem: Problem, conn: Connection | None = None) -> None:
        self._finish(message_id, Status.REJECTED, problem, None, conn)

    def release(self, message_id: int) -> None:
        """Give up a lease without an outcome (e.g. replay was asked for but not run)."""
        with self.db.write() as conn:
            sql.set_status(conn, message_id, Status.RECEIVED.value, self.clock())

    def _finish(
        self,
        message_id: int,
        status: Status,
        problem: Problem | None,
        references: Sequence[str] | None,
        conn: Connection | None = None,
    ) -> None:
        with self._write(conn) as tx:
            sql.set_status(
                tx,
                message_id,
                status.value,
                self.clock(),
                error=problem.text if problem else None,
                error_code=problem.code if problem else None,
                error_location=problem.location if problem else None,
                resources=references,
            )

    def by_status(self, status: Status, limit: int = 100) -> list[StoredMessage]:
        with self.db.read() as conn:
            return sql.by_status(conn, status.value, limit)

    def ids(self, status: Status) -> list[int]:
        with self.db.read() as conn:
            return sql.ids_by_status(conn, status.value)

    def abandoned(self, limit: int = 1000) -> list[int]:
        """Stored messages that nobody is processing: a crash or restart left them behind."""
        with self.db.read() as conn:
            return sql.unclaimed(conn, Status.RECEIVED.value, self.clock(), limit)

    def counts(self) -> dict[str, int]:
        with self.db.read() as conn:
            return sql.counts(conn)

    def purge(self, older_than: timedelta, statuses: Sequence[Status] = RETAINED_BY_DEFAULT) -> int:
        """Delete messages in ``statuses`` untouched for ``older_than``; how many went."""
        with self.db.write() as conn:
            return sql.purge(conn, [s.value for s in statuses], self.clock() - older_than)

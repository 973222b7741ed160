"""The background writer: a bounded queue drained in batches, one transaction per batch.

Why not write in the request's own transaction: reads have none, and on SQLite a write per
read would serialise all reads behind the single writer. Batching costs one commit per
``batch_size`` events or ``interval`` seconds. Policy (docs/audit.md):

- a full queue is back-pressure: the request waits up to ``put_timeout`` for room, then is
  answered 503 (it is never answered as if audited when it was not);
- a failed batch is kept and retried with back-off (never dropped), so a database outage
  fills the queue and turns into 503s rather than silent gaps;
- ``close`` drains the queue on shutdown; only a crash loses the events of the last
  ``interval`` (they were acknowledged to clients; the window is documented);
- ``offer_durable`` closes that window for deployments that ask (``IVZ_AUDIT_DURABLE``): the
  caller is told once its event is committed, and a batch holding such events commits as
  soon as the queue is empty (group commit) instead of waiting for ``interval``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from fhir_server.logging import get_logger
from fhir_server.storage.audit import AuditRow, insert_events
from fhir_server.storage.database import Database

log = get_logger(__name__)

#: Called from the writer thread once the event is committed.
Committed = Callable[[], None]
_Item = AuditRow | tuple[AuditRow, Committed] | threading.Event | None


class AuditWriter:
    """Owns one daemon thread that appends queued rows to ``audit_events``."""

    def __init__(
        self,
        db: Database,
        batch_size: int = 200,
        interval: float = 0.05,
        capacity: int = 10_000,
        put_timeout: float = 5.0,
    ) -> None:
        self.db = db
        self.batch_size = batch_size
        self.interval = interval
        self.put_timeout = put_timeout
        self._queue: queue.Queue[_Item] = queue.Queue(capacity)
        #: Cuts the writer's wait short: a full batch, a durable event, sync or close.
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def offer(self, row: AuditRow) -> bool:
        """Enqueue without waiting; False when the queue is full."""
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            return False
        if self._queue.qsize() >= self.batch_size:
            self._wake.set()
        return True

    def offer_durable(self, row: AuditRow, committed: Committed) -> bool:
        """Enqueue without waiting; ``committed()`` runs once the event is durable. False when
        the queue is full."""
        try:
            self._queue.put_nowait((row, committed))
        except queue.Full:
            return False
        self._wake.set()
        return True

    def put(self, row: AuditRow) -> bool:
        """Enqueue, waiting up to ``put_timeout`` for room (call from a worker thread)."""
        try:
            self._queue.put(row, timeout=self.put_timeout)
        except queue.Full:
            log.error("audit queue full: request refused", capacity=self._queue.maxsize)
            return False
        self._wake.set()  # the queue was full: drain now
        return True

    def sync(self, timeout: float = 5.0) -> bool:
        """Wait until every event queued before this call is committed."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Drain and stop (server shutdown)."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.error("audit queue still full at shutdown")
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        """One wake-up per batch: after the first event the thread sleeps out ``interval``
        (or until a full batch, a durable event, ``sync`` or ``close`` wakes it) and then
        takes what is queued. Waking per event cost a thread switch per request."""
        stopping = False
        while not stopping:
            item: _Item = self._queue.get()
            if isinstance(item, AuditRow) and self._queue.qsize() < self.batch_size - 1:
                self._wake.wait(self.interval)
            self._wake.clear()
            batch: list[AuditRow] = []
            markers: list[threading.Event] = []
            waiting: list[Committed] = []
            while True:
                if item is None:
                    stopping = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                elif isinstance(item, tuple):
                    batch.append(item[0])
                    waiting.append(item[1])
                else:
                    batch.append(item)
                if stopping or markers or len(batch) >= self.batch_size:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if not self._queue.empty():
                # The batch stopped full (or at a marker) with events left, a durable one
                # perhaps, whose wake-up the clear above took: take them without waiting.
                self._wake.set()
            self._commit(batch)
            for notify in [*waiting, *(marker.set for marker in markers)]:
                try:
                    notify()
                except Exception:  # e.g. the request's event loop closed meanwhile
                    log.exception("audit commit notification failed")

    def _commit(self, batch: list[AuditRow]) -> None:
        delay = 0.1
        while batch:
            try:
                with self.db.write() as conn:
                    insert_events(conn, batch)
                return
            except Exception:
                log.exception("audit batch not written; retrying", events=len(batch))
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

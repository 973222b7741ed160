"""The writer's policies: a full queue refuses (the request then gets 503), nothing is lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from fhir_server.audit.writer import AuditWriter
from fhir_server.storage.audit import AuditRow


class _StuckDatabase:
    """A database whose writes wait for ``release``, then fail once, then succeed."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.failed = False
        self.written: list[AuditRow] = []

    @contextmanager
    def write(self) -> Iterator[Any]:
        self.release.wait()
        if not self.failed:
            self.failed = True
            raise RuntimeError("database down")
        yield _Conn(self)


class _Conn:
    def __init__(self, db: _StuckDatabase) -> None:
        self.db = db


def _row(n: int) -> AuditRow:
    return AuditRow(f"e{n}", datetime.now(UTC), "c", "read", "R", "0", 200, (), b"{}")


def test_full_queue_refuses_then_retried_batches_all_arrive(monkeypatch: Any) -> None:
    written: list[AuditRow] = []
    monkeypatch.setattr(
        "fhir_server.audit.writer.insert_events", lambda conn, rows: written.extend(rows)
    )
    db = _StuckDatabase()
    writer = AuditWriter(db, batch_size=1, interval=0.01, capacity=2, put_timeout=0.05)  # type: ignore[arg-type]
    accepted = [n for n in range(6) if writer.put(_row(n))]
    assert len(accepted) < 6  # the writer is stuck: the queue filled and refused
    db.release.set()  # the first attempt fails, the retry commits the same batch
    assert writer.sync(timeout=5)
    writer.close()
    assert sorted(r.event_id for r in written) == sorted(f"e{n}" for n in accepted)

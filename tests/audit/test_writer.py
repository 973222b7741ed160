"""The writer's policies: a full queue refuses (the request then gets 503), nothing is lost."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx

from fhir_server.audit.writer import AuditWriter
from fhir_server.storage.audit import AuditRow, audit_events
from fhir_server.storage.database import Database
from tests.conftest import LiveServer


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


def test_durable_offer_is_told_after_commit_without_waiting_for_the_interval(
    monkeypatch: Any,
) -> None:
    written: list[AuditRow] = []
    monkeypatch.setattr(
        "fhir_server.audit.writer.insert_events", lambda conn, rows: written.extend(rows)
    )
    db = _StuckDatabase()
    db.failed = True  # no failure: writes go through once released
    db.release.set()
    writer = AuditWriter(db, batch_size=100, interval=30.0)  # type: ignore[arg-type]
    committed = threading.Event()
    seen: list[int] = []

    def told() -> None:
        seen.append(len(written))
        committed.set()

    assert writer.offer_durable(_row(1), told)
    assert committed.wait(5)  # long before the 30 s interval: group commit
    assert seen == [1]  # told only once the row was written
    writer.close()


def _open_writer(monkeypatch: Any, **settings: Any) -> tuple[AuditWriter, list[AuditRow]]:
    written: list[AuditRow] = []
    monkeypatch.setattr(
        "fhir_server.audit.writer.insert_events", lambda conn, rows: written.extend(rows)
    )
    db = _StuckDatabase()
    db.failed = True  # no failure
    return AuditWriter(db, **settings), written  # type: ignore[arg-type]


def test_a_durable_event_behind_a_full_batch_does_not_wait_for_the_interval(
    monkeypatch: Any,
) -> None:
    writer, written = _open_writer(monkeypatch, batch_size=3, interval=30.0)
    for n in range(4):  # one full batch and one plain event before the durable one
        assert writer.offer(_row(n))
    committed = threading.Event()
    assert writer.offer_durable(_row(9), committed.set)
    writer.db.release.set()  # type: ignore[attr-defined]
    assert committed.wait(5)  # not the 30 s interval
    assert "e9" in {r.event_id for r in written}
    writer.close()


def test_a_failing_commit_notification_does_not_stop_the_writer(monkeypatch: Any) -> None:
    writer, written = _open_writer(monkeypatch, batch_size=100, interval=0.01)
    writer.db.release.set()  # type: ignore[attr-defined]

    def loop_closed() -> None:
        raise RuntimeError("Event loop is closed")

    assert writer.offer_durable(_row(1), loop_closed)
    assert writer.sync(timeout=5)  # the writer thread is still alive and draining
    assert writer.offer(_row(2)) and writer.sync(timeout=5)
    assert [r.event_id for r in written] == ["e1", "e2"]
    writer.close()


def test_durable_server_answers_after_the_event_is_committed(tmp_path: Any) -> None:
    """With IVZ_AUDIT_DURABLE=on the event is in the database when the answer arrives."""
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    env = {"IVZ_AUDIT_DURABLE": "on", "IVZ_AUDIT_FLUSH_MS": "30000"}
    server = LiveServer(url, env=env).start()
    try:
        response = httpx.get(f"{server.base}/Patient", params={"name": "durable"}, timeout=10)
        assert response.status_code == 200
        db = Database(url)
        with db.read() as conn:
            rows = conn.execute(audit_events.select()).all()
        db.dispose()
        assert any(b"durable" in r.content for r in rows), rows
    finally:
        server.stop()

"""The raw database limit for ingestion: the server's rows written with no server at all.

Tables ``raw_resources`` and ``raw_resource_versions`` mirror the server's two tables (columns,
keys, unique constraints, indexes), so the database does the same work per row. Each batch of
100 resources is one transaction, as one transaction Bundle is in the server, written by
psycopg 3 ``executemany`` (the "raw INSERT" reference) or by binary COPY (the floor).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

#: (res_type, res_id, content) of one resource, rendered as the server stores it.
Row = tuple[str, str, bytes]
Batch = Sequence[Row]

_PG_DDL = (
    """CREATE TABLE raw_resources (
        res_pk BIGSERIAL PRIMARY KEY, res_type VARCHAR(64) NOT NULL,
        res_id VARCHAR(64) NOT NULL, version_id INTEGER NOT NULL,
        last_updated TIMESTAMPTZ NOT NULL, deleted BOOLEAN NOT NULL, content BYTEA,
        UNIQUE (res_type, res_id))""",
    "CREATE INDEX ix_raw_res_type_updated ON raw_resources (res_type, last_updated)",
    """CREATE TABLE raw_resource_versions (
        seq BIGSERIAL PRIMARY KEY, res_pk BIGINT NOT NULL, res_type VARCHAR(64) NOT NULL,
        res_id VARCHAR(64) NOT NULL, version_id INTEGER NOT NULL,
        last_updated TIMESTAMPTZ NOT NULL, method VARCHAR(8) NOT NULL,
        deleted BOOLEAN NOT NULL, content BYTEA, UNIQUE (res_pk, version_id))""",
    "CREATE INDEX ix_raw_ver_type_seq ON raw_resource_versions (res_type, seq)",
    "CREATE INDEX ix_raw_ver_updated ON raw_resource_versions (last_updated)",
    "CREATE INDEX ix_raw_ver_type_id ON raw_resource_versions (res_type, res_id, version_id)",
)
#: SQLite auto-assigns an INTEGER PRIMARY KEY, as the server's SQLite schema does.
_SQLITE_DDL = tuple(ddl.replace("BIGSERIAL", "INTEGER") for ddl in _PG_DDL)

_INSERT_RES = (
    "INSERT INTO raw_resources (res_type, res_id, version_id, last_updated, deleted, content)"
    " VALUES (%s, %s, 1, %s, false, %s) RETURNING res_pk"
)
_INSERT_VER = (
    "INSERT INTO raw_resource_versions"
    " (res_pk, res_type, res_id, version_id, last_updated, method, deleted, content)"
    " VALUES (%s, %s, %s, 1, %s, 'POST', false, %s)"
)
_COPY_RES = (
    "COPY raw_resources (res_pk, res_type, res_id, version_id, last_updated, deleted, content)"
    " FROM STDIN (FORMAT BINARY)"
)
_COPY_VER = (
    "COPY raw_resource_versions"
    " (res_pk, res_type, res_id, version_id, last_updated, method, deleted, content)"
    " FROM STDIN (FORMAT BINARY)"
)
_RES_TYPES = ["int8", "varchar", "varchar", "int4", "timestamptz", "bool", "bytea"]
_VER_TYPES = ["int8", "varchar", "varchar", "int4", "timestamptz", "varchar", "bool", "bytea"]


@dataclass(frozen=True)
class RawResult:
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def create_pg_tables(conninfo: str, schema: str) -> None:
    with psycopg.connect(conninfo, options=f"-csearch_path={schema}", autocommit=True) as conn:
        for ddl in _PG_DDL:
            conn.execute(ddl)


def truncate_pg_tables(conninfo: str, schema: str) -> None:
    """Each method starts from empty tables, as the server's run started from its own."""
    with psycopg.connect(conninfo, options=f"-csearch_path={schema}", autocommit=True) as conn:
        conn.execute("TRUNCATE raw_resources, raw_resource_versions RESTART IDENTITY")


def pg_executemany(conn: psycopg.Connection[Any], batch: Batch, when: datetime) -> None:
    """One transaction: executemany into both tables, keys from RETURNING (as the server)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_INSERT_RES, [(t, i, when, c) for t, i, c in batch], returning=True)
        pks = []
        while True:
            pks.append(cur.fetchone()[0])  # type: ignore[index]
            if not cur.nextset():
                break
        versions = [(pk, t, i, when, c) for pk, (t, i, c) in zip(pks, batch, strict=True)]
        cur.executemany(_INSERT_VER, versions)


def pg_copy(conn: psycopg.Connection[Any], batch: Batch, when: datetime) -> None:
    """One transaction: keys from the sequence, then binary COPY into both tables."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "SELECT nextval(pg_get_serial_sequence('raw_resources', 'res_pk'))"
            " FROM generate_series(1, %s)",
            (len(batch),),
        )
        pks = [r[0] for r in cur.fetchall()]
        with cur.copy(_COPY_RES) as copy:
            copy.set_types(_RES_TYPES)
            for pk, (t, i, c) in zip(pks, batch, strict=True):
                copy.write_row((pk, t, i, 1, when, False, c))
        with cur.copy(_COPY_VER) as copy:
            copy.set_types(_VER_TYPES)
            for pk, (t, i, c) in zip(pks, batch, strict=True):
                copy.write_row((pk, t, i, 1, when, "POST", False, c))


def run_pg(
    conninfo: str,
    schema: str,
    batches: Sequence[Batch],
    concurrency: int,
    write: Callable[[psycopg.Connection[Any], Batch, datetime], None],
) -> RawResult:
    """Write all batches over ``concurrency`` connections (threads); time the writing only."""
    truncate_pg_tables(conninfo, schema)
    conns = [
        psycopg.connect(conninfo, options=f"-csearch_path={schema}") for _ in range(concurrency)
    ]
    try:
        return _timed(conns, batches, write)
    finally:
        for conn in conns:
            conn.close()


def create_sqlite_tables(path: Path) -> None:
    with _sqlite(path) as conn:
        for ddl in _SQLITE_DDL:
            conn.execute(ddl)


def _sqlite(path: Path) -> sqlite3.Connection:
    """The server's pragmas: WAL, synchronous=FULL (durable on acknowledge), autocommit off."""
    conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def run_sqlite(path: Path, batches: Sequence[Batch], concurrency: int) -> RawResult:
    """executemany per batch in ``BEGIN IMMEDIATE`` (as the server writes); keys assigned here."""
    keys = itertools.count(1)

    def write(conn: sqlite3.Connection, batch: Batch, when: datetime) -> None:
        pks = [next(keys) for _ in batch]
        stamp = when.isoformat()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO raw_resources VALUES (?, ?, ?, 1, ?, 0, ?)",
            [(pk, t, i, stamp, c) for pk, (t, i, c) in zip(pks, batch, strict=True)],
        )
        conn.executemany(
            "INSERT INTO raw_resource_versions"
            " (res_pk, res_type, res_id, version_id, last_updated, method, deleted, content)"
            " VALUES (?, ?, ?, 1, ?, 'POST', 0, ?)",
            [(pk, t, i, stamp, c) for pk, (t, i, c) in zip(pks, batch, strict=True)],
        )
        conn.execute("COMMIT")

    conns = [_sqlite(path) for _ in range(concurrency)]
    try:
        return _timed(conns, batches, write)
    finally:
        for conn in conns:
            conn.close()


def _timed(conns: Sequence[Any], batches: Sequence[Batch], write: Callable[..., None]) -> RawResult:
    """Threads pull batches from one queue; wall time from the first start to the last end."""
    pending: Iterator[Batch] = iter(batches)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker(conn: Any) -> None:
        while not failures:
            with lock:
                batch = next(pending, None)
            if batch is None:
                return
            try:
                write(conn, batch, datetime.now().astimezone())
            except Exception as exc:
                failures.append(exc)

    threads = [threading.Thread(target=worker, args=(c,)) for c in conns]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"raw insert failed: {failures[0]!r}") from failures[0]
    return RawResult(sum(len(b) for b in batches), seconds)

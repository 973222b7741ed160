"""Engine creation for the two supported stores, with the pragmas that make them safe."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``postgres://`` URLs; the driver is psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Database:
    """One engine; ``write()`` and ``read()`` hand out connections inside a transaction."""

    def __init__(self, url: str, pool_size: int = 10, schema: str | None = None) -> None:
        self.url = normalise_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        self.engine: Engine = _create(self.url, pool_size, schema)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on success; SQLite takes its write lock up front."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(ivz_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self, single: bool = False) -> Iterator[Connection]:
        """A read-only snapshot; ``single`` for one statement (no BEGIN/COMMIT round trips)."""
        with self.engine.connect() as conn:
            if single:
                yield conn.execution_options(isolation_level="AUTOCOMMIT")
                return
            with conn.begin():
                yield conn

    def analyze(self) -> None:
        """Refresh the planner's statistics after a bulk load (PostgreSQL).

        A fresh database has none for thousands of rows just written until autovacuum gets to
        them; meanwhile searches over them (a booking's free-Slot search) took 10-40 s.
        """
        if self.is_sqlite:
            return
        with self.write() as conn:
            conn.exec_driver_sql("ANALYZE resources, idx_token, idx_date, idx_reference")

    def dispose(self) -> None:
        self.engine.dispose()


def _create(url: str, pool_size: int, schema: str | None) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    # Search statements differ only in their parameters, and a generic plan chosen for one
    # (psycopg prepares a statement after 5 runs) can be 500x slower for another: plan each.
    connect_args: dict[str, Any] = {"prepare_threshold": None}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
    # No pre-ping: it costs a round trip per request; stale connections are recycled instead.
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        connect_args=connect_args,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # JIT compiles for ~250 ms whenever an index walk's estimate looks costly, while the
        # statement itself runs in milliseconds: short OLTP statements never gain from it.
        with dbapi_conn.cursor() as cur:
            cur.execute("SET jit = off")
        dbapi_conn.commit()

    return engine


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event emit BEGIN, so writers can take the lock at once.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("ivz_write") else "BEGIN")

    return engine

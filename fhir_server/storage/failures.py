"""Which database failures pass on a retry: one rule for the REST API (503) and the HL7 worker.

Transient: the connection was lost or refused, the server is shutting down or full
(SQLSTATE 08xxx, 57P01-57P03, 53300), the pool had no connection, or the transaction was
rolled back to break a deadlock or a serialization conflict or lock wait (40001, 40P01,
55P03). Everything else (disk full, a statement too costly or too large, a schema fault)
fails again on a retry and is an error, not a reason to come back later.
"""

from __future__ import annotations

import sqlite3

import psycopg
import psycopg_pool
import sqlalchemy.exc

#: Classes whose instances may be transient (exception handlers are registered by class).
DATABASE_FAILURES: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    psycopg_pool.PoolTimeout,
)

_RETRYABLE_STATES = ("08", "57P01", "57P02", "57P03", "53300", "40001", "40P01", "55P03")


def is_transient(exc: BaseException) -> bool:
    """Whether the same request may simply be sent again later."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError | psycopg_pool.PoolTimeout):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if not isinstance(exc, sqlalchemy.exc.OperationalError) or exc.orig is None:
            return False
        return is_transient(exc.orig)
    if isinstance(exc, psycopg.Error):
        if exc.sqlstate is None:  # no answer from the server: the connection failed
            return isinstance(exc, psycopg.OperationalError)
        return exc.sqlstate.startswith(_RETRYABLE_STATES)
    if isinstance(exc, sqlite3.OperationalError):  # another writer holds the file
        return "locked" in str(exc) or "busy" in str(exc)
    return False

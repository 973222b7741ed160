"""Bulk row writes: PostgreSQL COPY inside the caller's transaction, executemany elsewhere.

Bundles write thousands of index rows at once; COPY avoids re-parsing a huge multi-row INSERT
per statement (profiled: the largest single cost of a 100-entry transaction).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert, text

#: Below this many rows a plain INSERT is as fast as COPY.
COPY_THRESHOLD = 20


def write_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in the current transaction."""
    if not rows:
        return
    if conn.dialect.name != "postgresql" or len(rows) < COPY_THRESHOLD:
        conn.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    copy_sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def next_keys(conn: Connection, table: str, column: str, count: int) -> list[int]:
    """Reserve ``count`` values of a PostgreSQL serial column's sequence in one round trip."""
    stmt = text(
        "SELECT nextval(pg_get_serial_sequence(:table, :column)) FROM generate_series(1, :n)"
    )
    return [int(r[0]) for r in conn.execute(stmt, {"table": table, "column": column, "n": count})]

"""Writing a resource's search index rows, in the caller's transaction (SQL lives here only).

Rows are built as tuples in table column order. On PostgreSQL all the index rows of a write
(and, for an update, the removal of the previous rows) go in **one** statement: one
data-modifying CTE per table, ``INSERT ... SELECT * FROM unnest(<one array per column>)``,
so a bundle costs one round trip for its index however many tables it touches (it was one
COPY or INSERT per table, plus one DELETE per table for updates). All CTEs see the same
snapshot, so the DELETEs remove only rows that existed before the statement. Other databases
get one executemany per table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
from sqlalchemy import BigInteger, Connection, DateTime, Integer, Numeric, delete

from fhir_server.search.extract import (
    CompositeValue,
    DateValue,
    IndexValues,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
)
from fhir_server.storage.bulk import write_rows
from fhir_server.storage.search_tables import (
    INDEX_TABLES,
    STRING_LEN,
    TOKEN_LEN,
)

Row = tuple[Any, ...]

#: The index tables in a fixed order; rows are tuples in each table's column order.
_TABLES = tuple(INDEX_TABLES.values())
_BY_NAME = {table.name: table for table in _TABLES}
_COLUMNS: dict[str, tuple[str, ...]] = {t.name: tuple(c.name for c in t.columns) for t in _TABLES}
_KEY = ("res_pk", "res_type", "param")
#: The tuples built below follow these column orders.
_EXPECTED = {
    "idx_string": (*_KEY, "norm", "exact"),
    "idx_token": (*_KEY, "system", "code", "text", "type_system", "type_code"),
    "idx_date": (*_KEY, "low", "high"),
    "idx_number": (*_KEY, "value", "low", "high"),
    "idx_quantity": (*_KEY, "value", "low", "high", "system", "code", "unit"),
    "idx_reference": (
        *_KEY,
        "target_type",
        "target_id",
        "version",
        "url",
        "identifier_system",
        "identifier_value",
    ),
    "idx_uri": (*_KEY, "uri"),
    "idx_composite": (
        *_KEY,
        "c1_system",
        "c1_code",
        "c2_system",
        "c2_code",
        "c2_value",
        "c2_low",
        "c2_high",
        "c2_date_low",
        "c2_date_high",
        "c2_text",
    ),
}
if _COLUMNS != _EXPECTED:  # a migration changed a table: the tuples below must follow
    raise RuntimeError(f"index table columns changed: {_COLUMNS}")


def row_tuples(pk: int, values: IndexValues) -> dict[str, list[Row]]:
    """The rows to insert for one resource, by index table name, as column-ordered tuples."""
    out: dict[str, list[Row]] = {t.name: [] for t in _TABLES}
    _add(out, pk, values)
    return out


def _add(out: dict[str, list[Row]], pk: int, values: IndexValues) -> None:
    # ``x and x[:n]`` cuts a text to its column and keeps None (inline: ~15 per resource)
    t = values.resource_type
    out["idx_string"].extend(
        (pk, t, v.param, v.normalized[:STRING_LEN], v.exact) for v in values.strings
    )
    out["idx_token"].extend(
        (
            pk,
            t,
            v.param,
            v.system and v.system[:TOKEN_LEN],
            v.code and v.code[:TOKEN_LEN],
            v.text and v.text[:STRING_LEN],
            v.type_system and v.type_system[:TOKEN_LEN],
            v.type_code and v.type_code[:TOKEN_LEN],
        )
        for v in values.tokens
    )
    out["idx_date"].extend((pk, t, v.param, v.low, v.high) for v in values.dates)
    out["idx_number"].extend((pk, t, v.param, v.value, v.low, v.high) for v in values.numbers)
    out["idx_quantity"].extend(
        (
            pk,
            t,
            v.param,
            v.value,
            v.low,
            v.high,
            v.system and v.system[:TOKEN_LEN],
            v.code and v.code[:TOKEN_LEN],
            v.unit and v.unit[:STRING_LEN],
        )
        for v in values.quantities
    )
    out["idx_reference"].extend(
        (
            pk,
            t,
            v.param,
            v.target_type,
            v.target_id and v.target_id[:TOKEN_LEN],
            v.version and v.version[:64],
            v.url and v.url[:TOKEN_LEN],
            v.identifier_system and v.identifier_system[:TOKEN_LEN],
            v.identifier_value and v.identifier_value[:TOKEN_LEN],
        )
        for v in values.references
    )
    out["idx_uri"].extend((pk, t, v.param, v.uri[:TOKEN_LEN]) for v in values.uris)
    composites = out["idx_composite"]
    for c in values.composites:
        row = _composite_row(pk, t, c)
        if row is not None:
            composites.append(row)


def rows_by_table(pk: int, values: IndexValues) -> dict[str, list[dict[str, Any]]]:
    """The rows to insert for one resource, grouped by index table name (as dicts)."""
    return {
        name: [dict(zip(_COLUMNS[name], row, strict=True)) for row in rows]
        for name, rows in row_tuples(pk, values).items()
    }


def _composite_row(pk: int, t: str, v: CompositeValue) -> Row | None:
    """Two-component composites (all of R4's but a few genomics ones) flattened into one row.

    Columns: c1_system, c1_code, c2_system, c2_code, c2_value, c2_low, c2_high,
    c2_date_low, c2_date_high, c2_text.
    """
    if len(v.components) != 2:
        return None
    first, second = v.components
    if isinstance(first, TokenValue):
        c1 = (first.system and first.system[:TOKEN_LEN], first.code and first.code[:TOKEN_LEN])
    elif isinstance(first, ReferenceValue):
        c1 = (None, f"{first.target_type}/{first.target_id}"[:TOKEN_LEN])
    else:
        return None
    c2: Row
    if isinstance(second, TokenValue):
        system, code = (
            second.system and second.system[:TOKEN_LEN],
            second.code and second.code[:TOKEN_LEN],
        )
        c2 = (system, code, None, None, None, None, None, None)
    elif isinstance(second, QuantityValue):
        system, code = (
            second.system and second.system[:TOKEN_LEN],
            second.code and second.code[:TOKEN_LEN],
        )
        c2 = (system, code, second.value, second.low, second.high, None, None, None)
    elif isinstance(second, NumberValue):
        c2 = (None, None, second.value, second.low, second.high, None, None, None)
    elif isinstance(second, DateValue):
        c2 = (None, None, None, None, None, second.low, second.high, None)
    elif isinstance(second, StringValue):
        c2 = (None, None, None, None, None, None, None, second.normalized[:STRING_LEN])
    else:
        return None
    return (pk, t, v.param, *c1, *c2)


def clear(conn: Connection, pks: Sequence[int]) -> None:
    """Drop every index row of these resources (before re-indexing, or on delete)."""
    if not pks:
        return
    if conn.dialect.name == "postgresql":
        _pg_execute(conn, _pg_statement((), True), [_pks_text(pks)] * len(_TABLES))
        return
    for table in _TABLES:
        conn.execute(delete(table).where(table.c.res_pk.in_(pks)))


def write(conn: Connection, items: Iterable[tuple[int, IndexValues]], fresh: bool) -> None:
    """Index resources; ``fresh`` (just created) skips clearing rows that cannot exist yet."""
    items = list(items)
    batch: dict[str, list[Row]] = {t.name: [] for t in _TABLES}
    for pk, values in items:
        _add(batch, pk, values)
    pks = [pk for pk, _ in items]
    if conn.dialect.name == "postgresql":
        _pg_write(conn, batch, pks if not fresh else [])
        return
    if not fresh:
        clear(conn, pks)
    for name, rows in batch.items():
        if rows:
            columns = _COLUMNS[name]
            write_rows(conn, _BY_NAME[name], [dict(zip(columns, r, strict=True)) for r in rows])


# ------------------------------------------------------------------------------ PostgreSQL


def _pg_type(column: Any) -> str:
    kind = column.type
    if isinstance(kind, BigInteger | Integer):
        return "bigint"
    if isinstance(kind, DateTime):
        return "timestamptz"
    if isinstance(kind, Numeric):
        return "numeric"
    return "text"


@cache
def _pg_statement(names: tuple[str, ...], clearing: bool) -> str:
    """One statement: DELETE the pks' rows from every index table (``clearing``), INSERT the
    given tables' rows. Parameters: the pk array as text once per table (when clearing), then
    one JSON array of row arrays per inserted table.

    JSON rather than one array per column: psycopg dumps Python lists element by element in
    Python, which cost more than the whole statement; ``orjson`` writes the rows in C, and
    the statement stays short and few-parametered enough for psycopg to cache its parse.
    """
    ctes: list[str] = []
    if clearing:
        ctes += [
            f"d_{t.name} AS (DELETE FROM {t.name} WHERE res_pk = ANY(%s::bigint[]))"
            for t in _TABLES
        ]
    for name in names:
        table = _BY_NAME[name]
        columns = ", ".join(c.name for c in table.columns)
        values = ", ".join(_from_json(i, c) for i, c in enumerate(table.columns))
        ctes.append(
            f"i_{name} AS (INSERT INTO {name} ({columns}) "
            f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS r)"
        )
    return "WITH " + ", ".join(ctes) + " SELECT 1"


def _from_json(index: int, column: Any) -> str:
    kind = _pg_type(column)
    return f"r->>{index}" if kind == "text" else f"(r->>{index})::{kind}"


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # exact, as written; ±Infinity as PostgreSQL spells it
        return orjson.Fragment(format(value, "f")) if value.is_finite() else str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _rows_json(rows: list[Row]) -> str:
    return orjson.dumps(rows, default=_json_default, option=orjson.OPT_NAIVE_UTC).decode()


def _pks_text(pks: Sequence[int]) -> str:
    return "{" + ",".join(str(int(pk)) for pk in pks) + "}"


def _pg_execute(conn: Connection, statement: str, params: list[Any]) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(statement, params)


__all__ = ["clear", "row_tuples", "rows_by_table", "write"]


#: Tables with at least this many rows go by COPY; the others (and the DELETEs of an update)
#: share one statement. Measured on a 100-entry bundle (~16 rows per resource) and on a
#: 17-resource HL7 message: COPY is the cheapest per row, one statement the cheapest per
#: round trip.
COPY_THRESHOLD = 64


def _pg_write(conn: Connection, batch: dict[str, list[Row]], clear_pks: list[int]) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    small = tuple(n for n, rows in batch.items() if rows and len(rows) < COPY_THRESHOLD)
    with raw.cursor() as cur:
        if small or clear_pks:
            params: list[Any] = [_pks_text(clear_pks)] * len(_TABLES) if clear_pks else []
            params.extend(_rows_json(batch[name]) for name in small)
            cur.execute(_pg_statement(small, bool(clear_pks)), params)
        for name, rows in batch.items():
            if len(rows) >= COPY_THRESHOLD:
                with cur.copy(_copy_statement(name)) as copy:
                    for row in rows:
                        copy.write_row(row)


@cache
def _copy_statement(name: str) -> str:
    return f"COPY {name} ({', '.join(_COLUMNS[name])}) FROM STDIN"

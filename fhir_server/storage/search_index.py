"""Writing a resource's search index rows, in the caller's transaction (SQL lives here only)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, delete

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


def _cut(value: str | None, size: int) -> str | None:
    return None if value is None else value[:size]


def _row(pk: int, rtype: str, param: str, **cols: Any) -> dict[str, Any]:
    return {"res_pk": pk, "res_type": rtype, "param": param, **cols}


def rows_by_table(pk: int, values: IndexValues) -> dict[str, list[dict[str, Any]]]:
    """The rows to insert for one resource, grouped by index table name."""
    t = values.resource_type
    out: dict[str, list[dict[str, Any]]] = {
        "idx_string": [
            _row(pk, t, v.param, norm=v.normalized[:STRING_LEN], exact=v.exact)
            for v in values.strings
        ],
        "idx_token": [_token_row(pk, t, v) for v in values.tokens],
        "idx_date": [_row(pk, t, v.param, low=v.low, high=v.high) for v in values.dates],
        "idx_number": [
            _row(pk, t, v.param, value=v.value, low=v.low, high=v.high) for v in values.numbers
        ],
        "idx_quantity": [_quantity_row(pk, t, v) for v in values.quantities],
        "idx_reference": [_reference_row(pk, t, v) for v in values.references],
        "idx_uri": [_row(pk, t, v.param, uri=v.uri[:TOKEN_LEN]) for v in values.uris],
        "idx_composite": [r for v in values.composites if (r := _composite_row(pk, t, v))],
    }
    return out


def _token_row(pk: int, t: str, v: TokenValue) -> dict[str, Any]:
    return _row(
        pk,
        t,
        v.param,
        system=_cut(v.system, TOKEN_LEN),
        code=_cut(v.code, TOKEN_LEN),
        text=_cut(v.text, STRING_LEN),
        type_system=_cut(v.type_system, TOKEN_LEN),
        type_code=_cut(v.type_code, TOKEN_LEN),
    )


def _quantity_row(pk: int, t: str, v: QuantityValue) -> dict[str, Any]:
    return _row(
        pk,
        t,
        v.param,
        value=v.value,
        low=v.low,
        high=v.high,
        system=_cut(v.system, TOKEN_LEN),
        code=_cut(v.code, TOKEN_LEN),
        unit=_cut(v.unit, STRING_LEN),
    )


def _reference_row(pk: int, t: str, v: ReferenceValue) -> dict[str, Any]:
    return _row(
        pk,
        t,
        v.param,
        target_type=v.target_type,
        target_id=_cut(v.target_id, TOKEN_LEN),
        version=_cut(v.version, 64),
        url=_cut(v.url, TOKEN_LEN),
        identifier_system=_cut(v.identifier_system, TOKEN_LEN),
        identifier_value=_cut(v.identifier_value, TOKEN_LEN),
    )


_EMPTY_COMPOSITE: dict[str, Any] = {
    "c1_system": None,
    "c1_code": None,
    "c2_system": None,
    "c2_code": None,
    "c2_value": None,
    "c2_low": None,
    "c2_high": None,
    "c2_date_low": None,
    "c2_date_high": None,
    "c2_text": None,
}


def _composite_row(pk: int, t: str, v: CompositeValue) -> dict[str, Any] | None:
    """Two-component composites (all of R4's but a few genomics ones) flattened into one row."""
    if len(v.components) != 2:
        return None
    first, second = v.components
    cols = dict(_EMPTY_COMPOSITE)
    if isinstance(first, TokenValue):
        cols.update(c1_system=_cut(first.system, TOKEN_LEN), c1_code=_cut(first.code, TOKEN_LEN))
    elif isinstance(first, ReferenceValue):
        cols.update(c1_code=f"{first.target_type}/{first.target_id}"[:TOKEN_LEN])
    else:
        return None
    if isinstance(second, TokenValue):
        cols.update(c2_system=_cut(second.system, TOKEN_LEN), c2_code=_cut(second.code, TOKEN_LEN))
    elif isinstance(second, QuantityValue):
        cols.update(
            c2_value=second.value,
            c2_low=second.low,
            c2_high=second.high,
            c2_system=_cut(second.system, TOKEN_LEN),
            c2_code=_cut(second.code, TOKEN_LEN),
        )
    elif isinstance(second, NumberValue):
        cols.update(c2_value=second.value, c2_low=second.low, c2_high=second.high)
    elif isinstance(second, DateValue):
        cols.update(c2_date_low=second.low, c2_date_high=second.high)
    elif isinstance(second, StringValue):
        cols.update(c2_text=second.normalized[:STRING_LEN])
    else:
        return None
    return _row(pk, t, v.param, **cols)


_BY_NAME = {table.name: table for table in INDEX_TABLES.values()}


def clear(conn: Connection, pks: Sequence[int]) -> None:
    """Drop every index row of these resources (before re-indexing, or on delete)."""
    if not pks:
        return
    for table in INDEX_TABLES.values():
        conn.execute(delete(table).where(table.c.res_pk.in_(pks)))


def write(conn: Connection, items: Iterable[tuple[int, IndexValues]], fresh: bool) -> None:
    """Index resources; ``fresh`` (just created) skips clearing rows that cannot exist yet."""
    items = list(items)
    if not fresh:
        clear(conn, [pk for pk, _ in items])
    batch: dict[str, list[dict[str, Any]]] = {t.name: [] for t in INDEX_TABLES.values()}
    for pk, values in items:
        for name, rows in rows_by_table(pk, values).items():
            batch[name].extend(rows)
    for name, rows in batch.items():
        write_rows(conn, _BY_NAME[name], rows)


__all__ = ["clear", "rows_by_table", "write"]

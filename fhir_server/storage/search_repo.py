"""Running a search: matches in keyset-paged order, totals, and _include/_revinclude."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, overload

from sqlalchemy import ColumnElement, Connection, and_, case, false, func, null, or_, select, tuple_

from fhir_server.storage.repository import StoredVersion, as_utc, current_from_row
from fhir_server.storage.schema import resources
from fhir_server.storage.search_query import Condition, Scope, SortKey, Walk
from fhir_server.storage.search_tables import idx_reference

R = resources
#: The client's access rule as a condition on a resource-table alias (storage/access_sql.py).
Visible = Callable[[Scope], Condition]

_COLUMNS = (
    R.c.res_pk,
    R.c.res_type,
    R.c.res_id,
    R.c.version_id,
    R.c.last_updated,
    R.c.deleted,
    R.c.content,
)


@dataclass
class Page:
    rows: list[StoredVersion]
    next_cursor: str | None
    prev_cursor: str | None
    #: A first page filled by the index walk: the matches are many and were not counted, so a
    #: default total stays absent rather than counting them all (``_total`` still counts).
    many: bool = False


#: A first page of a one-key sort reads at most this many rows of the key's index in order
#: (PostgreSQL). A full page among them means the matches are common and the page is done;
#: otherwise they are rare and each one's key is computed instead. At a million resources a
#: walked row costs ~5-7 µs (5,000: ~25 ms), while computing the keys costs enumerating the
#: cheapest condition: milliseconds when one is selective, 1.3 s when two common ones meet in
#: 5,400 matches (1.3% of the index; a budget of 2,500 sent that query there).
WALK_BUDGET = 5000
#: The walk reads this many of them first and reads on only when, at the rate found there, the
#: whole budget would hold a quarter of a page: rare matches cost a short walk, not the budget.
#: Lenient on purpose: reading on needlessly costs the budget (~25 ms at a million resources),
#: giving up wrongly can cost computing every match's key (~1.3 s for 60,000 token matches).
WALK_PROBE = 500


def scope(types: Sequence[str]) -> Scope:
    return Scope(R, tuple(types))


def base_conditions(types: Sequence[str]) -> list[Condition]:
    return [R.c.res_type.in_(list(types)), R.c.deleted.is_(False)]


def id_in(ids: Sequence[str]) -> Condition:
    return R.c.res_id.in_(list(ids))


def updated_after(since: datetime) -> Condition:
    return R.c.last_updated > since


@overload
def count(conn: Connection, conditions: Sequence[Condition]) -> int: ...
@overload
def count(conn: Connection, conditions: Sequence[Condition], cap: int) -> int | None: ...
def count(conn: Connection, conditions: Sequence[Condition], cap: int | None = None) -> int | None:
    """The number of matches; with ``cap``, None when there are more than ``cap``."""
    if cap is None:
        stmt = select(func.count()).select_from(R).where(*conditions)
        return int(conn.execute(stmt).scalar_one())
    capped = select(R.c.res_pk).where(*conditions).limit(cap + 1).subquery()
    found = int(conn.execute(select(func.count()).select_from(capped)).scalar_one())
    return found if found <= cap else None


def estimate(conn: Connection, conditions: Sequence[Condition]) -> int:
    """The planner's row estimate on PostgreSQL (no scan); an exact count elsewhere."""
    if conn.dialect.name != "postgresql":
        return count(conn, conditions)
    stmt = select(R.c.res_pk).where(*conditions)
    compiled = stmt.compile(conn, compile_kwargs={"render_postcompile": True})
    plan = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])


def _keys(sort: Sequence[SortKey]) -> list[SortKey]:
    """The sort keys (missing values last in either direction), then res_pk: a total order."""
    return [*sort, SortKey(R.c.res_pk, False)]


def _encode(values: Sequence[Any], direction: str, walk: bool = False) -> str:
    def enc(v: Any) -> Any:
        if isinstance(v, datetime):
            return {"t": v.isoformat()}
        if isinstance(v, Decimal):
            return {"d": str(v)}
        return v

    data: dict[str, Any] = {"v": [enc(v) for v in values], "dir": direction}
    if walk:
        data["w"] = 1  # the first page found enough matches to walk the sort index
    raw = json.dumps(data, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[list[Any], str, bool]:
    """Boundary values, direction and walk flag; ValueError when the token is not ours."""

    def dec(v: Any) -> Any:
        if isinstance(v, dict) and "t" in v:
            return as_utc(datetime.fromisoformat(v["t"]))
        if isinstance(v, dict) and "d" in v:
            return Decimal(v["d"])
        return v

    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        values, direction, walk = [dec(v) for v in data["v"]], data["dir"], data.get("w") == 1
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError("malformed paging token") from exc
    if direction not in ("next", "prev"):
        raise ValueError("malformed paging token")
    return values, direction, walk


def _after(keys: Sequence[SortKey], values: Sequence[Any], forward: bool) -> Condition:
    """Rows strictly after (or before) the boundary row in the keyset order."""
    options = []
    for i, key in enumerate(keys):
        equal = [_same(keys[j].expr, values[j]) for j in range(i)]
        ascending = (not key.descending) == forward
        value = values[i]
        if value is None:
            if forward:
                continue  # missing values come last: nothing follows them on this key
            step: Condition = key.expr.is_not(None)  # backwards, every present value precedes
        else:
            step = key.expr > value if ascending else key.expr < value
            if forward:
                step = or_(step, key.expr.is_(None))
        options.append(and_(*equal, step))
    return or_(*options) if options else false()


def _order(key: SortKey, forward: bool) -> Any:
    """Missing values last when paging forwards, hence first when walking backwards."""
    ordered = key.expr.asc() if (not key.descending) == forward else key.expr.desc()
    return ordered.nulls_last() if forward else ordered.nulls_first()


def _same(expr: ColumnElement[Any], value: Any) -> Condition:
    return expr.is_(None) if value is None else expr == value


def page(
    conn: Connection,
    conditions: Sequence[Condition],
    sort: Sequence[SortKey],
    count_: int,
    cursor: str | None,
) -> Page:
    """One page in keyset order: writes by others never shift it (inserts land in order)."""
    keys = _keys(sort)
    forward, walks = True, False
    many = False
    values: list[Any] | None = None
    if cursor:
        values, direction, walks = decode_cursor(cursor)
        if len(values) != len(keys):
            raise ValueError("paging token does not fit this search")
        forward = direction == "next"
    walk = sort[0].walk if len(sort) == 1 and conn.dialect.name == "postgresql" else None
    rows: list[Any] | None = None
    if walk is not None and forward and (cursor is None or walks):
        # First page: walk a bounded prefix of the key's index (no count of the matches:
        # counting 60,000 of them cost 120 ms). Later pages of a walk walk on, unbounded.
        budget = WALK_BUDGET if cursor is None else None
        rows = _walked(conn, conditions, sort[0], walk, count_ + 1, values, budget)
        walks = rows is not None
        many = walks and cursor is None and len(rows or ()) > count_
    if rows is None:
        rows = _ordered(conn, conditions, keys, count_ + 1, values, forward)
    more = len(rows) > count_
    rows = rows[:count_]
    if not forward:
        rows.reverse()
    stored = [current_from_row(r) for r in rows]

    def boundary(row: Any) -> list[Any]:
        return [getattr(row, f"k{i}") for i in range(len(keys))]

    has_next = more if forward else bool(cursor)
    has_prev = (bool(cursor) if forward else more) and bool(rows)
    next_cursor = _encode(boundary(rows[-1]), "next", walks) if has_next and rows else None
    prev_cursor = _encode(boundary(rows[0]), "prev", walks) if has_prev else None
    return Page(stored, next_cursor, prev_cursor, many)


def _ordered(
    conn: Connection,
    conditions: Sequence[Condition],
    keys: Sequence[SortKey],
    limit: int,
    values: Sequence[Any] | None,
    forward: bool,
) -> list[Any]:
    """Rows in keyset order, each sort value computed per matching resource."""
    where = list(conditions)
    if values is not None:
        where.append(_after(keys, values, forward))
    labeled = [k.expr.label(f"k{i}") for i, k in enumerate(keys)]
    order = [_order(k, forward) for k in keys]
    stmt = select(*_COLUMNS, *labeled).where(*where).order_by(*order).limit(limit)
    return list(conn.execute(stmt).all())


#: Off for the walk's statement. Parallel workers do not stop early: they cost more to start.
_WALK_SETTINGS = (
    ("enable_sort", "off"),
    ("enable_hashagg", "off"),
    ("enable_bitmapscan", "off"),
    ("max_parallel_workers_per_gather", "0"),
)


def _walked(
    conn: Connection,
    conditions: Sequence[Condition],
    key: SortKey,
    walk: Walk,
    limit: int,
    values: Sequence[Any] | None,
    budget: int | None = None,
) -> list[Any] | None:
    """Forward rows of a one-key sort read from the key's index table, in index order.

    Each resource is met at the index row that holds its sort value (the max descending, the
    min ascending), so PostgreSQL can walk the index and stop after ``limit`` matches instead
    of computing the key of every match (1.5 s for 60,000 matches of a million). Resources
    without a value follow, as in the general order.

    With ``budget``, at most that many index rows are read, and first only ``WALK_PROBE`` of
    them: the walk reads on when those held at least a quarter of a page's worth for the
    whole budget. None when the matches are rare (the budget, or the probe, used up before
    ``limit`` matches): the caller computes their keys instead.
    """
    rows: list[Any] = []
    if values is None or values[0] is not None:
        stages = [None] if budget is None else sorted({min(WALK_PROBE, budget), budget})
        for stage in stages:
            walked = _walk_rows(conn, conditions, key, walk, limit, values, stage)
            if walked is None:  # unusually many duplicates: the general order decides
                return _ordered(conn, conditions, _keys([key]), limit, values, True)
            rows, used_up = walked
            if len(rows) == limit or not used_up:
                break  # a full page, or the whole index was read
            assert budget is not None and stage is not None
            if stage == budget or 4 * len(rows) * budget < limit * stage:
                return None
        if len(rows) == limit:
            return rows
    missing = [*conditions, key.expr.is_(None)]
    if values is not None and values[0] is None:
        missing.append(R.c.res_pk > values[1])
    null_key = SortKey(null(), key.descending)
    stmt = (
        select(*_COLUMNS, null_key.expr.label("k0"), R.c.res_pk.label("k1"))
        .where(*missing)
        .order_by(R.c.res_pk)
        .limit(limit - len(rows))
    )
    return rows + list(conn.execute(stmt).all())


def _walk_rows(
    conn: Connection,
    conditions: Sequence[Condition],
    key: SortKey,
    walk: Walk,
    limit: int,
    values: Sequence[Any] | None,
    budget: int | None,
) -> tuple[list[Any], bool] | None:
    """Up to ``limit`` distinct resources from the walk, and whether ``budget`` index rows were
    read without finding them; None when equal values on several index rows of each resource
    kept even ``2 * limit`` rows from holding ``limit`` resources."""
    for fetch in (limit, limit * 2):
        fetched, used_up = _walk_index(conn, conditions, key, walk, fetch, values, budget)
        seen: set[int] = set()
        rows: list[Any] = []
        for row in fetched:
            if row.res_pk not in seen:
                seen.add(row.res_pk)
                rows.append(row)
                if len(rows) == limit:
                    return rows, False
        if len(fetched) < fetch:
            return rows, used_up  # the walk ended (index or budget) before the page was full
    return None


def _walk_index(
    conn: Connection,
    conditions: Sequence[Condition],
    key: SortKey,
    walk: Walk,
    fetch: int,
    values: Sequence[Any] | None,
    budget: int | None,
) -> tuple[list[Any], bool]:
    """Up to ``fetch`` matching index rows in key order (a resource may repeat), and whether
    ``budget`` index rows were read without finding ``fetch`` of them.

    The index rows are read in order (at most ``budget``: a LIMIT under the join), and each is
    checked on its own: does the resource match, and if so, is this row its sort value (CASE
    keeps that order: most rows of a rare match fail the first test)? The match test is a
    correlated EXISTS (OFFSET 0 keeps PostgreSQL from turning it into a join), so every
    condition is probed for that one resource by its key; as a join the planner may instead
    hash every match of a condition first (60,000 token rows), whatever the budget.
    """
    table = walk.table.alias("sort_walk")
    column = table.c[walk.column]
    index_keys = [SortKey(column, key.descending), SortKey(table.c.res_pk, False)]
    where: list[Condition] = [
        table.c.res_type.in_(walk.types),
        table.c.param == walk.code,
        column.is_not(None),  # never a resource's value; read first by a descending walk
    ]
    if values is not None:
        # The redundant bound lets the index scan start at the boundary row.
        where.append(column <= values[0] if key.descending else column >= values[0])
        where.append(_after(index_keys, values, True))
    # Plain directions: NULLS LAST would keep PostgreSQL from reading the index backwards.
    order = [column.desc() if key.descending else column.asc(), table.c.res_pk.asc()]
    index_rows = select(table.c.res_pk, column.label("value")).where(*where).order_by(*order)
    if budget is not None:
        index_rows = index_rows.limit(budget)
    walked = index_rows.subquery("sort_walk_rows")
    own = walk.table.alias("sort_own")
    own_column = own.c[walk.column]
    best = select(func.max(own_column) if key.descending else func.min(own_column)).where(
        own.c.res_pk == walked.c.res_pk, own.c.param == walk.code
    )
    matches = (
        select(R.c.res_pk).where(R.c.res_pk == walked.c.res_pk, *conditions).offset(0).exists()
    )
    found = R.alias("sort_found")
    stmt = (
        select(*(found.c[c.name] for c in _COLUMNS), walked.c.value.label("k0"))
        .add_columns(found.c.res_pk.label("k1"))
        .select_from(walked.join(found, found.c.res_pk == walked.c.res_pk))
        .where(case((matches, walked.c.value == best.scalar_subquery()), else_=false()))
        .order_by(walked.c.value.desc() if key.descending else walked.c.value.asc())
        .order_by(walked.c.res_pk.asc())
        .limit(fetch)
    )
    # Without a budget (later pages) the planner, misjudging the per-row checks, may instead
    # collect every match and sort them (60 ms at 6,000 matches, 2 s at 140,000).
    # One round trip each way (no parameters: psycopg sends several statements at once).
    conn.exec_driver_sql("; ".join(f"SET LOCAL {name} = {value}" for name, value in _WALK_SETTINGS))
    try:
        fetched = list(conn.execute(stmt))
        exhausted = False
        if budget is not None and len(fetched) < fetch:
            # One row more than the walk read: with exactly ``budget`` rows it was complete.
            read = select(func.count()).select_from(
                select(table.c.res_pk).where(*where).limit(budget + 1).subquery()
            )
            exhausted = int(conn.execute(read).scalar_one()) > budget
    finally:
        conn.exec_driver_sql("; ".join(f"RESET {name}" for name, _ in _WALK_SETTINGS))
    return fetched, exhausted


def included(
    conn: Connection,
    sources: Sequence[StoredVersion],
    params: Sequence[str] | None,
    target_type: str | None,
    source_types: Sequence[str],
    visible: Visible | None = None,
) -> list[StoredVersion]:
    """Resources referenced by ``sources`` through ``params`` (None: every reference param);
    ``visible`` keeps only what the client's access rule reaches."""
    if not sources:
        return []
    ref = idx_reference
    target = R.alias()
    conds: list[Condition] = [
        ref.c.res_pk.in_([s.res_pk for s in sources]),
        ref.c.res_type.in_(source_types),
    ]
    if params is not None:
        conds.append(ref.c.param.in_(params))
    if target_type:
        conds.append(ref.c.target_type == target_type)
    stmt = (
        select(*(target.c[c.name] for c in _COLUMNS))
        .distinct()
        .join(ref, and_(target.c.res_type == ref.c.target_type, target.c.res_id == ref.c.target_id))
        .where(*conds, target.c.deleted.is_(False))
    )
    return _keep_visible(conn, [current_from_row(r) for r in conn.execute(stmt).all()], visible)


def rev_included(
    conn: Connection,
    targets: Sequence[StoredVersion],
    source_type: str,
    params: Sequence[str] | None,
    visible: Visible | None = None,
) -> list[StoredVersion]:
    """Resources of ``source_type`` that reference any of ``targets`` through ``params``."""
    if not targets:
        return []
    ref = idx_reference
    conds: list[Condition] = [
        ref.c.res_type == source_type,
        tuple_(ref.c.target_type, ref.c.target_id).in_([(t.resource_type, t.id) for t in targets]),
    ]
    if params is not None:
        conds.append(ref.c.param.in_(params))
    stmt = (
        select(*_COLUMNS)
        .distinct()
        .join(ref, ref.c.res_pk == R.c.res_pk)
        .where(*conds, R.c.deleted.is_(False))
    )
    if visible is not None:
        stmt = stmt.where(visible(Scope(R, (source_type,))))
    return [current_from_row(r) for r in conn.execute(stmt).all()]


def _keep_visible(
    conn: Connection, found: list[StoredVersion], visible: Visible | None
) -> list[StoredVersion]:
    """The included resources the access rule reaches (types known only once read)."""
    if visible is None or not found:
        return found
    table = R.alias("visible_check")
    types = tuple(sorted({f.resource_type for f in found}))
    stmt = select(table.c.res_pk).where(
        table.c.res_pk.in_([f.res_pk for f in found]), visible(Scope(table, types))
    )
    keep = set(conn.execute(stmt).scalars())
    return [f for f in found if f.res_pk in keep]

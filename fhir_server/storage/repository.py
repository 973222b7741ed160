"""The only code that writes SQL: read and append resource versions on one connection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    distinct,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from fhir_server.storage.bulk import COPY_THRESHOLD, next_keys, write_rows
from fhir_server.storage.schema import resource_versions, resources


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One version of one resource as stored; ``content`` is None for a deletion."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    deleted: bool
    content: bytes | None
    method: str = "PUT"
    res_pk: int = 0


class IdTaken(Exception):
    """Another writer created the same type/id first; the caller retries as an update."""


class VersionConflict(Exception):
    """The current version moved on under us; history must not fork."""


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_CURRENT = select(
    resources.c.res_pk,
    resources.c.res_type,
    resources.c.res_id,
    resources.c.version_id,
    resources.c.last_updated,
    resources.c.deleted,
    resources.c.content,
)


def get_current(
    conn: Connection, resource_type: str, resource_id: str, lock: bool = False
) -> StoredVersion | None:
    """The newest version (deleted or not); ``lock`` holds it until the transaction ends."""
    stmt = _CURRENT.where(resources.c.res_type == resource_type, resources.c.res_id == resource_id)
    if lock and conn.dialect.name != "sqlite":  # SQLite writers already hold the database lock
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return None if row is None else current_from_row(row)


def current_from_row(row: Any) -> StoredVersion:
    """A ``resources`` row (res_pk, res_type, res_id, version_id, …) as a StoredVersion."""
    return StoredVersion(
        row.res_type,
        row.res_id,
        row.version_id,
        as_utc(row.last_updated),
        row.deleted,
        row.content,
        res_pk=row.res_pk,
    )


_VERSION_COLS = (
    resource_versions.c.res_type,
    resource_versions.c.res_id,
    resource_versions.c.version_id,
    resource_versions.c.last_updated,
    resource_versions.c.deleted,
    resource_versions.c.content,
    resource_versions.c.method,
    resource_versions.c.res_pk,
    resource_versions.c.seq,
)


def _version(row: object) -> StoredVersion:
    return StoredVersion(
        row.res_type,  # type: ignore[attr-defined]
        row.res_id,  # type: ignore[attr-defined]
        row.version_id,  # type: ignore[attr-defined]
        as_utc(row.last_updated),  # type: ignore[attr-defined]
        row.deleted,  # type: ignore[attr-defined]
        row.content,  # type: ignore[attr-defined]
        row.method,  # type: ignore[attr-defined]
        row.res_pk,  # type: ignore[attr-defined]
    )


def get_version(
    conn: Connection, resource_type: str, resource_id: str, version_id: int
) -> StoredVersion | None:
    row = conn.execute(
        select(*_VERSION_COLS).where(
            resource_versions.c.res_type == resource_type,
            resource_versions.c.res_id == resource_id,
            resource_versions.c.version_id == version_id,
        )
    ).first()
    return None if row is None else _version(row)


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A version to append: the caller has already rendered the exact bytes to store."""

    resource_type: str
    id: str
    version_id: int
    last_updated: datetime
    method: str
    content: bytes | None

    @property
    def deleted(self) -> bool:
        return self.content is None


def insert_new(
    conn: Connection, items: Sequence[NewVersion], may_exist: bool = False
) -> list[StoredVersion]:
    """Create resources (version 1). ``may_exist`` (a client-chosen id) guards the insert with a
    savepoint so that a concurrent creator turns it into :class:`IdTaken`, not an aborted
    transaction; server-assigned UUIDs cannot collide and skip that round trip."""
    if not items:
        return []
    small_pg = conn.dialect.name == "postgresql" and len(items) < COPY_THRESHOLD
    rows = (
        []
        if small_pg
        else [
            {
                "res_type": v.resource_type,
                "res_id": v.id,
                "version_id": v.version_id,
                "last_updated": v.last_updated,
                "deleted": v.deleted,
                "content": v.content,
            }
            for v in items
        ]
    )
    try:
        with conn.begin_nested() if may_exist else nullcontext():
            pks = _pg_insert_new(conn, items) if small_pg else _insert_current(conn, rows)
    except IntegrityError as exc:
        raise IdTaken(str(exc.orig)) from exc
    if not small_pg:  # the small statement wrote the history rows too
        _append_history(conn, items, pks)
    return [_stored(v, pk) for v, pk in zip(items, pks, strict=True)]


def _insert_current(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    if conn.dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD:
        pks = next_keys(conn, "resources", "res_pk", len(rows))
        write_rows(conn, resources, [{"res_pk": pk, **r} for pk, r in zip(pks, rows, strict=True)])
        return pks
    stmt = insert(resources).returning(resources.c.res_pk, sort_by_parameter_order=True)
    return [r.res_pk for r in conn.execute(stmt, rows)]


def append_version(conn: Connection, current: StoredVersion, new: NewVersion) -> StoredVersion:
    """Move a resource from ``current`` to ``new``; fails if someone else moved it first."""
    result = conn.execute(
        update(resources)
        .where(
            and_(
                resources.c.res_pk == current.res_pk,
                resources.c.version_id == current.version_id,
            )
        )
        .values(
            version_id=new.version_id,
            last_updated=new.last_updated,
            deleted=new.deleted,
            content=new.content,
        )
    )
    if result.rowcount != 1:
        raise VersionConflict(f"{current.resource_type}/{current.id} changed concurrently")
    _append_history(conn, [new], [current.res_pk])
    return _stored(new, current.res_pk)


def append_versions(
    conn: Connection, moves: Sequence[tuple[StoredVersion, NewVersion]]
) -> list[StoredVersion]:
    """``append_version`` for many resources: one UPDATE executemany, one history write."""
    if not moves:
        return []
    if conn.dialect.name == "postgresql" and len(moves) < COPY_THRESHOLD:
        _pg_append_versions(conn, moves)
        return [_stored(new, cur.res_pk) for cur, new in moves]
    stmt = (
        update(resources)
        .where(
            resources.c.res_pk == bindparam("b_pk"),
            resources.c.version_id == bindparam("b_version"),
        )
        .values(
            version_id=bindparam("b_new_version"),
            last_updated=bindparam("b_updated"),
            deleted=bindparam("b_deleted"),
            content=bindparam("b_content"),
        )
    )
    rows = [
        {
            "b_pk": cur.res_pk,
            "b_version": cur.version_id,
            "b_new_version": new.version_id,
            "b_updated": new.last_updated,
            "b_deleted": new.deleted,
            "b_content": new.content,
        }
        for cur, new in moves
    ]
    result = conn.execute(stmt, rows)
    if conn.dialect.supports_sane_multi_rowcount and result.rowcount != len(rows):
        raise VersionConflict("a resource of the batch changed concurrently")
    _append_history(conn, [new for _, new in moves], [cur.res_pk for cur, _ in moves])
    return [_stored(new, cur.res_pk) for cur, new in moves]


def get_current_many(
    conn: Connection, keys: Sequence[tuple[str, str]], lock: bool = False
) -> dict[tuple[str, str], StoredVersion]:
    """Current versions of many resources by (type, id), locked like ``get_current``."""
    if not keys:
        return {}
    if conn.dialect.name == "postgresql":
        return _pg_current_many(conn, keys, lock)
    stmt = _CURRENT.where(tuple_(resources.c.res_type, resources.c.res_id).in_(list(keys)))
    if lock and conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    found = [current_from_row(r) for r in conn.execute(stmt).all()]
    return {(v.resource_type, v.id): v for v in found}


def _append_history(conn: Connection, items: Sequence[NewVersion], pks: Sequence[int]) -> None:
    write_rows(
        conn,
        resource_versions,
        [
            {
                "res_pk": pk,
                "res_type": v.resource_type,
                "res_id": v.id,
                "version_id": v.version_id,
                "last_updated": v.last_updated,
                "method": v.method,
                "deleted": v.deleted,
                "content": v.content,
            }
            for v, pk in zip(items, pks, strict=True)
        ],
    )


def _stored(v: NewVersion, pk: int) -> StoredVersion:
    return StoredVersion(
        v.resource_type, v.id, v.version_id, v.last_updated, v.deleted, v.content, v.method, pk
    )


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[StoredVersion]
    #: ``seq`` of the last entry, to continue after it; None when there is nothing more.
    next_cursor: int | None
    total: int | None


def history(
    conn: Connection,
    *,
    resource_type: str | None = None,
    resource_id: str | None = None,
    since: datetime | None = None,
    at_or_before: int | None = None,
    before_cursor: int | None = None,
    count: int = 20,
    with_total: bool = False,
    visible: Callable[[Any], Any] | None = None,
) -> HistoryPage:
    """Versions newest first, keyset-paged on ``seq`` so concurrent writes never shift pages.

    ``visible`` (a condition on a ``resources`` alias) keeps the versions of resources the
    client may see now.
    """
    conds: list[ColumnElement[bool]] = []
    if visible is not None:
        current = resources.alias("history_current")
        conds.append(
            resource_versions.c.res_pk.in_(select(current.c.res_pk).where(visible(current)))
        )
    if resource_type is not None:
        conds.append(resource_versions.c.res_type == resource_type)
    if resource_id is not None:
        conds.append(resource_versions.c.res_id == resource_id)
    if since is not None:
        conds.append(resource_versions.c.last_updated >= since)
    if at_or_before is not None:
        conds.append(resource_versions.c.seq <= at_or_before)
    total = None
    if with_total:
        total = conn.execute(
            select(func.count()).select_from(resource_versions).where(*conds)
        ).scalar_one()
    if before_cursor is not None:
        conds.append(resource_versions.c.seq < before_cursor)
    rows = conn.execute(
        select(*_VERSION_COLS)
        .where(*conds)
        .order_by(resource_versions.c.seq.desc())
        .limit(count + 1)
    ).all()
    more = len(rows) > count
    rows = rows[:count]
    cursor = rows[-1].seq if more and rows else None
    return HistoryPage([_version(r) for r in rows], cursor, total)


def latest_seq(conn: Connection) -> int:
    """The newest history position: the upper bound that pins a history snapshot."""
    return int(
        conn.execute(select(func.coalesce(func.max(resource_versions.c.seq), 0))).scalar_one()
    )


def latest_seq_of_type(conn: Connection, resource_type: str) -> int:
    """The newest history position of one type (deletes included): it changes on every write
    of that type, so a cache of the type's resources can tell when it is stale."""
    stmt = select(func.max(resource_versions.c.seq)).where(
        resource_versions.c.res_type == resource_type
    )
    return int(conn.execute(stmt).scalar() or 0)


def present_types(conn: Connection) -> set[str]:
    """Types with at least one current resource."""
    stmt = select(distinct(resources.c.res_type)).where(resources.c.deleted.is_(False))
    return {str(r[0]) for r in conn.execute(stmt).all()}


def current_of_type(conn: Connection, resource_type: str) -> list[StoredVersion]:
    """Every live resource of one type (for small, definitional types only)."""
    rows = conn.execute(
        _CURRENT.where(resources.c.res_type == resource_type, resources.c.deleted.is_(False))
    ).all()
    return [current_from_row(r) for r in rows]


def current_batch(
    conn: Connection, resource_type: str | None, after_pk: int, limit: int
) -> list[StoredVersion]:
    """Live resources in ``res_pk`` order after ``after_pk``: walks a table in stable batches."""
    stmt = _CURRENT.where(resources.c.res_pk > after_pk, resources.c.deleted.is_(False))
    if resource_type is not None:
        stmt = stmt.where(resources.c.res_type == resource_type)
    rows = conn.execute(stmt.order_by(resources.c.res_pk).limit(limit)).all()
    return [current_from_row(r) for r in rows]


# ------------------------------------------------------------------ PostgreSQL, small writes
#
# A unit of a few resources (an HL7 message, an insurer referral, a small Bundle) pays more
# for SQLAlchemy's per-call rendering of multi-row statements (their text changes with the
# number of rows, so psycopg never reuses a parse) than for the rows themselves. These
# statements have one fixed text whatever the number of rows: the rows travel as one JSON
# array (written by orjson in C) or as key arrays, and the current row and its history row
# are written by one statement. Bundles of COPY_THRESHOLD rows and more go by COPY instead.

_PG_CURRENT_MANY = (
    "SELECT r.res_pk, r.res_type, r.res_id, r.version_id, r.last_updated, r.deleted, r.content "
    "FROM resources AS r JOIN unnest(%(types)s::text[], %(ids)s::text[]) AS k(res_type, res_id) "
    "ON r.res_type = k.res_type AND r.res_id = k.res_id"
)

_PG_ROWS = (
    "json_to_recordset(%(rows)s::json) AS v(res_pk bigint, res_type text, res_id text, "
    "old_version integer, version_id integer, last_updated timestamptz, method text, "
    "content text)"
)

#: New resources and their first history rows; the keys come back by (type, id).
_PG_INSERT_NEW = (
    f"WITH v AS (SELECT * FROM {_PG_ROWS}), "
    "i AS (INSERT INTO resources (res_type, res_id, version_id, last_updated, deleted, content) "
    "SELECT res_type, res_id, version_id, last_updated, content IS NULL, "
    "convert_to(content, 'UTF8') FROM v RETURNING res_pk, res_type, res_id), "
    "h AS (INSERT INTO resource_versions "
    "(res_pk, res_type, res_id, version_id, last_updated, method, deleted, content) "
    "SELECT i.res_pk, v.res_type, v.res_id, v.version_id, v.last_updated, v.method, "
    "v.content IS NULL, convert_to(v.content, 'UTF8') FROM i JOIN v USING (res_type, res_id)) "
    "SELECT res_pk, res_type, res_id FROM i"
)

#: Moves of current rows guarded by their old version, and the history rows of those moved.
_PG_APPEND_VERSIONS = (
    f"WITH v AS (SELECT * FROM {_PG_ROWS}), "
    "u AS (UPDATE resources AS r SET version_id = v.version_id, last_updated = v.last_updated, "
    "deleted = v.content IS NULL, content = convert_to(v.content, 'UTF8') FROM v "
    "WHERE r.res_pk = v.res_pk AND r.version_id = v.old_version RETURNING r.res_pk), "
    "h AS (INSERT INTO resource_versions "
    "(res_pk, res_type, res_id, version_id, last_updated, method, deleted, content) "
    "SELECT v.res_pk, v.res_type, v.res_id, v.version_id, v.last_updated, v.method, "
    "v.content IS NULL, convert_to(v.content, 'UTF8') FROM v JOIN u USING (res_pk)) "
    "SELECT count(*) FROM u"
)


def _pg_rows(pairs: Sequence[tuple[int, int, NewVersion]]) -> str:
    """(res_pk, old version, new version) as the JSON array that ``_PG_ROWS`` reads."""
    return orjson.dumps(
        [
            {
                "res_pk": pk,
                "res_type": v.resource_type,
                "res_id": v.id,
                "old_version": old,
                "version_id": v.version_id,
                "last_updated": v.last_updated,
                "method": v.method,
                "content": None if v.content is None else v.content.decode(),
            }
            for pk, old, v in pairs
        ],
        option=orjson.OPT_NAIVE_UTC,
    ).decode()


def _pg_current_many(
    conn: Connection, keys: Sequence[tuple[str, str]], lock: bool
) -> dict[tuple[str, str], StoredVersion]:
    # Locked in key order whatever the plan (a nested loop follows the array's order), so
    # two writers of the same resources in different orders cannot deadlock.
    statement = _PG_CURRENT_MANY + (" ORDER BY r.res_pk FOR UPDATE OF r" if lock else "")
    types, ids = zip(*keys, strict=True)
    rows = conn.exec_driver_sql(statement, {"types": list(types), "ids": list(ids)}).all()
    return {
        (rtype, rid): StoredVersion(
            rtype, rid, version, as_utc(updated), deleted, content, res_pk=pk
        )
        for pk, rtype, rid, version, updated, deleted, content in rows
    }


def _pg_insert_new(conn: Connection, items: Sequence[NewVersion]) -> list[int]:
    rows = _pg_rows([(0, 0, v) for v in items])
    found = conn.exec_driver_sql(_PG_INSERT_NEW, {"rows": rows}).all()
    pk_of = {(rtype, rid): int(pk) for pk, rtype, rid in found}
    return [pk_of[(v.resource_type, v.id)] for v in items]


def _pg_append_versions(
    conn: Connection, moves: Sequence[tuple[StoredVersion, NewVersion]]
) -> None:
    rows = _pg_rows([(cur.res_pk, cur.version_id, new) for cur, new in moves])
    moved = conn.exec_driver_sql(_PG_APPEND_VERSIONS, {"rows": rows}).scalar_one()
    if moved != len(moves):
        raise VersionConflict("a resource of the batch changed concurrently")

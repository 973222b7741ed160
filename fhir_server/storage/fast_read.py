"""Reads of one current resource on the event loop (PostgreSQL): no thread hop, no ORM layer.

A read is the EHR-facing hot path. Profiling showed the worker-thread hop and SQLAlchemy's
per-statement work costing as much as the database round trip itself, so this one query runs
on psycopg's async pool with a server-side prepared statement.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from fhir_server.storage.repository import StoredVersion

_QUERY = (
    "SELECT res_pk, version_id, last_updated, deleted, content FROM resources "
    "WHERE res_type = %s AND res_id = %s"
)


def libpq_url(sqlalchemy_url: str) -> str:
    """The same database as a libpq URI (drops the ``+psycopg`` driver suffix)."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class AsyncReader:
    """A small async pool for current-version reads."""

    def __init__(self, sqlalchemy_url: str, max_size: int = 10) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(
            libpq_url(sqlalchemy_url),
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            open=False,
        )

    async def open(self) -> None:
        await self._pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self._pool.close()

    async def current(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_QUERY, (resource_type, resource_id))
            row = await cur.fetchone()
        if row is None:
            return None
        pk, version_id, last_updated, deleted, content = row
        return StoredVersion(
            resource_type, resource_id, version_id, last_updated, deleted, content, res_pk=pk
        )

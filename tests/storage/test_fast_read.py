"""The event-loop reader (PostgreSQL): concurrent reads share statements, each gets its own
answer, and a failure reaches every read of its statement."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fhir_server.service.resources import ResourceService
from fhir_server.storage import fast_read, migrate
from fhir_server.storage.database import Database
from fhir_server.storage.fast_read import AsyncReader


@pytest.fixture(scope="module")
def pg(postgres_schema_url: str) -> Iterator[Database]:
    """PostgreSQL only: SQLite reads run in worker threads, not on the event loop."""
    database = Database(postgres_schema_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


def _patients(db: Database, count: int) -> list[str]:
    service = ResourceService(db)
    return [
        service.create("Patient", {"resourceType": "Patient", "gender": "other"}).stored.id
        for _ in range(count)
    ]


class _Counting(AsyncReader):
    def __init__(self, url: str, max_size: int) -> None:
        super().__init__(url, max_size)
        self.statements: list[int] = []

    async def _fetch(self, keys: list[fast_read.Key]) -> dict[fast_read.Key, object]:  # type: ignore[override]
        self.statements.append(len(keys))
        return await super()._fetch(keys)


def _run(db: Database, max_size: int, reads: list[tuple[str, str]]) -> tuple[list, list[int]]:
    async def main() -> tuple[list, list[int]]:
        reader = _Counting(db.url, max_size)
        await reader.open()
        try:
            results = await asyncio.gather(*(reader.current(t, i) for t, i in reads))
        finally:
            await reader.close()
        return list(results), reader.statements

    return asyncio.run(main())


def test_concurrent_reads_share_statements_and_each_gets_its_resource(pg: Database) -> None:
    ids = _patients(pg, 30)
    results, statements = _run(pg, 2, [("Patient", i) for i in ids])
    assert [r.id for r in results] == ids
    assert all(r.resource_type == "Patient" and r.version_id == 1 for r in results)
    assert len(statements) < len(ids)
    assert sum(statements) == len(ids)


def test_a_lone_read_is_sent_alone(pg: Database) -> None:
    [one] = _patients(pg, 1)
    results, statements = _run(pg, 4, [("Patient", one)])
    assert results[0].id == one
    assert statements == [1]


def test_unknown_ids_and_repeated_keys_in_one_statement(pg: Database) -> None:
    [one] = _patients(pg, 1)
    reads = [("Patient", one), ("Patient", "no-such-id"), ("Patient", one), ("Observation", one)]
    results, statements = _run(pg, 1, reads)
    assert [r.id if r else None for r in results] == [one, None, one, None]
    assert statements == [3]  # three distinct keys, one statement


def test_more_keys_than_a_statement_takes_are_split(pg: Database) -> None:
    ids = _patients(pg, fast_read.MAX_BATCH + 5)
    results, statements = _run(pg, 1, [("Patient", i) for i in ids])
    assert [r.id for r in results] == ids
    assert max(statements) <= fast_read.MAX_BATCH


def test_a_failed_statement_fails_each_of_its_reads_and_the_reader_goes_on(pg: Database) -> None:
    [one] = _patients(pg, 1)

    async def main() -> tuple[list[object], object]:
        reader = AsyncReader(pg.url, 2)
        await reader.open()
        calls = 0
        real = reader._fetch

        async def failing_once(keys: list[fast_read.Key]) -> dict[fast_read.Key, object]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("connection lost")
            return await real(keys)  # type: ignore[return-value]

        reader._fetch = failing_once  # type: ignore[method-assign]
        try:
            first = await asyncio.gather(
                reader.current("Patient", one),
                reader.current("Patient", one),
                return_exceptions=True,
            )
            after = await reader.current("Patient", one)
        finally:
            await reader.close()
        return list(first), after

    first, after = asyncio.run(main())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert after is not None


def test_a_cancelled_read_does_not_disturb_the_others(pg: Database) -> None:
    ids = _patients(pg, 3)

    async def main() -> list[object]:
        reader = AsyncReader(pg.url, 1)
        await reader.open()
        try:
            tasks = [asyncio.ensure_future(reader.current("Patient", i)) for i in ids]
            await asyncio.sleep(0)
            tasks[1].cancel()
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await reader.close()

    results = asyncio.run(main())
    assert isinstance(results[1], asyncio.CancelledError)
    assert [getattr(r, "id", None) for r in (results[0], results[2])] == [ids[0], ids[2]]

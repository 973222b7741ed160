"""A database that fails transiently (connection lost, pool exhausted, deadlock) answers 503
with Retry-After; a failure a retry would repeat (disk full, statement too large) is a 500."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import psycopg
import psycopg_pool
import pytest
import sqlalchemy.exc

from fhir_server.app import create_app
from fhir_server.settings import Settings
from fhir_server.storage import migrate
from fhir_server.storage.database import Database


def _wrapped(orig: Exception) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, orig)


FAILURES = [
    _wrapped(psycopg.OperationalError("server closed the connection unexpectedly")),
    _wrapped(psycopg.errors.DeadlockDetected("deadlock detected")),
    _wrapped(psycopg.errors.AdminShutdown("terminating connection")),
    sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    psycopg.OperationalError("connection refused"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 30 s"),
]
PERMANENT = [
    _wrapped(psycopg.errors.DiskFull("could not extend file")),
    _wrapped(psycopg.errors.ProgramLimitExceeded("index row size exceeds maximum")),
    _wrapped(psycopg.errors.QueryCanceled("canceling statement due to statement timeout")),
]


def _read_with(tmp_path: Path, failure: Exception) -> httpx.Response:
    db = Database(f"sqlite:///{tmp_path / 'ivz.db'}")
    migrate.upgrade(db)
    app = create_app(Settings(database_url=db.url, auth="off"), database=db)

    def broken(*_: Any, **__: Any) -> Any:
        raise failure

    async def main() -> httpx.Response:
        async with app.router.lifespan_context(app):
            app.state.service.read = broken
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get("/fhir/Patient/p1")

    response = asyncio.run(main())
    db.dispose()
    return response


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: repr(f)[:40])
def test_a_transient_database_failure_answers_503_with_retry_after(
    tmp_path: Path, failure: Exception
) -> None:
    response = _read_with(tmp_path, failure)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    issue = response.json()["issue"][0]
    assert issue["code"] == "transient" and "try again later" in issue["diagnostics"]


@pytest.mark.parametrize("failure", PERMANENT, ids=lambda f: repr(f)[:40])
def test_a_failure_a_retry_would_repeat_is_a_500(tmp_path: Path, failure: Exception) -> None:
    response = _read_with(tmp_path, failure)
    assert response.status_code == 500 and "retry-after" not in response.headers
    assert response.json()["issue"][0]["code"] == "exception"

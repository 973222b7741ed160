"""A database that fails (connection lost, pool exhausted, deadlock) answers 503 with
Retry-After, as a retryable OperationOutcome, never a 500."""

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

FAILURES = [
    sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
    psycopg.OperationalError("connection refused"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 30 s"),
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda f: type(f).__name__)
def test_a_failing_database_answers_503_with_retry_after(tmp_path: Path, failure: Any) -> None:
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
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    issue = response.json()["issue"][0]
    assert issue["code"] == "transient" and "not applied" in issue["diagnostics"]

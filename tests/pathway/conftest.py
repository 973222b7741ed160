"""Pathway tests get databases of their own: teams and slots seeded here would otherwise book
the referrals other test packages create in the shared session database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhir_server.service.resources import ResourceService
from fhir_server.storage import migrate
from fhir_server.storage.database import Database
from tests.conftest import POSTGRES_URL, STORES, LiveServer, _postgres_answers


def _fresh_url(store: str, tmp_path: Path) -> Iterator[str]:
    if store == "sqlite":
        yield f"sqlite:///{tmp_path / f'pathway-{uuid.uuid4().hex[:8]}.db'}"
        return
    reason = _postgres_answers()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"ivz_pathway_{uuid.uuid4().hex[:10]}"
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=STORES)
def pathway_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL per test, on each store."""
    yield from _fresh_url(str(request.param), tmp_path)


@pytest.fixture()
def pathway_db(pathway_url: str) -> Iterator[Database]:
    database = Database(pathway_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture()
def pathway_service(pathway_db: Database) -> ResourceService:
    """The service layer on a fresh database, as the app builds it."""
    return ResourceService(pathway_db)


@pytest.fixture()
def pathway_server(pathway_url: str) -> Iterator[LiveServer]:
    """A real ``ivz serve`` on a fresh database (start-up cost ~1-2 s: use sparingly)."""
    live = LiveServer(pathway_url).start()
    yield live
    live.stop()


@pytest.fixture()
def pathway_client(pathway_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=pathway_server.base, timeout=30, headers={"Accept": "application/fhir+json"}
    ) as c:
        yield c

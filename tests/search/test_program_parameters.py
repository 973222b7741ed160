"""The program's SearchParameters are indexed from the first write, and a database written
before they existed is backfilled once when the server starts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete

from fhir_server.service.resources import ResourceService
from fhir_server.storage import migrate
from fhir_server.storage.database import Database
from fhir_server.storage.schema import resource_versions, resources
from fhir_server.storage.search_tables import idx_reference
from tests.conftest import STORES, LiveServer, fresh_url

REFERRAL = {
    "resourceType": "ServiceRequest",
    "id": "r1",
    "status": "active",
    "intent": "order",
    "subject": {"reference": "Patient/p1"},
    "reasonReference": [{"reference": "Condition/c1"}],
}


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_url(str(request.param), tmp_path, "ivz_prog")


def test_a_service_indexes_the_program_parameters_from_the_first_write(url: str) -> None:
    db = Database(url)
    migrate.upgrade(db)
    service = ResourceService(db)
    service.update("ServiceRequest", "r1", dict(REFERRAL))
    found = service.search.search(["ServiceRequest"], [("reason-reference", "Condition/c1")])
    assert [m.id for m in found.matches] == ["r1"]
    db.dispose()


def test_a_database_from_before_the_parameters_is_backfilled_on_start(url: str) -> None:
    db = Database(url)
    migrate.upgrade(db)
    ResourceService(db).update("ServiceRequest", "r1", dict(REFERRAL))
    with db.write() as conn:  # as an older version left it: no such rows, no stored parameters
        conn.execute(delete(idx_reference).where(idx_reference.c.param == "reason-reference"))
        conn.execute(delete(resources).where(resources.c.res_type == "SearchParameter"))
        conn.execute(
            delete(resource_versions).where(resource_versions.c.res_type == "SearchParameter")
        )
    db.dispose()
    server = LiveServer(url).start()
    try:
        response = httpx.get(
            f"{server.base}/ServiceRequest", params={"reason-reference": "Condition/c1"}
        )
        assert response.status_code == 200
        assert [e["resource"]["id"] for e in response.json().get("entry", [])] == ["r1"]
    finally:
        server.stop()

"""Pathway tests get databases of their own: teams and slots seeded here would otherwise book
the referrals other test packages create in the shared session database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_server.fhir import jsonio
from fhir_server.pathway.rules import pathway_hooks
from fhir_server.service.resources import ResourceService
from fhir_server.storage import migrate
from fhir_server.storage.database import Database
from tests.conftest import STORES, LiveServer, fresh_url


@pytest.fixture(params=STORES)
def pathway_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL per test, on each store."""
    yield from fresh_url(str(request.param), tmp_path, "ivz_pathway")


@pytest.fixture()
def pathway_db(pathway_url: str) -> Iterator[Database]:
    database = Database(pathway_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture()
def pathway_service(pathway_db: Database) -> ResourceService:
    """The service layer on a fresh database, as the app builds it (with the pathway rules)."""
    return ResourceService(pathway_db, hooks=pathway_hooks())


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


# --- booking helpers (resources of a case, Slots at chosen times) ---------------------------

KVNR = "http://fhir.de/sid/gkv/kvid-10"


def soon(hours: float) -> datetime:
    """A moment ``hours`` from now (UTC, whole seconds)."""
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0)


def patient(postal_code: str | None = "24103", kvnr: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": "Muster", "given": ["Erika"]}],
        "gender": "female",
        "birthDate": "1966-05-04",
    }
    if postal_code:
        resource["address"] = [{"use": "home", "city": "Ort", "postalCode": postal_code}]
    if kvnr:
        resource["identifier"] = [{"system": KVNR, "value": kvnr}]
    return resource


def referral(
    patient_ref: str, authored: datetime | str | None = None, status: str = "active"
) -> dict[str, Any]:
    """A second-opinion referral as the contract defines it."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": status,
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "11429006"}]},
        "reasonCode": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0336", "code": "S"}]}
        ],
        "subject": {"reference": patient_ref},
    }
    if authored is not None:
        resource["authoredOn"] = (
            authored if isinstance(authored, str) else authored.isoformat(timespec="seconds")
        )
    return resource


def add_slot(service: ResourceService, team: str, start: datetime, minutes: int = 90) -> str:
    """A free Slot of a team's Schedule starting at ``start``."""
    from fhir_server.pathway.teams import slot

    doc = slot(team, start, start + timedelta(minutes=minutes))
    doc["id"] = f"{team}-{start:%Y%m%d%H%M%S}"
    service.update("Slot", doc["id"], doc)
    return str(doc["id"])


def teams_without_slots(service: ResourceService) -> None:
    from fhir_server.pathway.teams import seed_teams

    seed_teams(service, date.today(), days=0)


def read(service: ResourceService, resource_type: str, resource_id: str) -> dict[str, Any]:
    found = service.read(resource_type, resource_id)
    assert found.content is not None
    doc: dict[str, Any] = jsonio.loads_trusted(found.content)
    return doc


def search(service: ResourceService, resource_type: str, *pairs: tuple[str, str]) -> list[Any]:
    found = service.search.search([resource_type], [*pairs, ("_count", "1000")], strict=True)
    return [jsonio.loads_trusted(m.content) for m in found.matches if m.content is not None]


def appointments(service: ResourceService, referral_id: str) -> list[dict[str, Any]]:
    return search(
        service, "Appointment", ("based-on", f"ServiceRequest/{referral_id}"), ("_sort", "_id")
    )


def live(service: ResourceService, referral_id: str) -> dict[str, Any]:
    """The one live (booked) Appointment of a referral."""
    found = [a for a in appointments(service, referral_id) if a["status"] == "booked"]
    assert len(found) == 1, found
    return found[0]


def slot_of(appointment: dict[str, Any]) -> str:
    return str(appointment["slot"][0]["reference"].removeprefix("Slot/"))


def extension(resource: dict[str, Any], name: str) -> Any:
    url = f"https://ivz-bridge.example/fhir/StructureDefinition/{name}"
    found = [e for e in resource.get("extension", []) if e["url"] == url]
    assert len(found) == 1
    value = {k: v for k, v in found[0].items() if k != "url"}
    return next(iter(value.values()))

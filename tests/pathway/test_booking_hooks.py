"""The service hooks the pathway rules run on (fhir_server/service/hooks.py)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.fhir.outcomes import FhirError
from fhir_server.service.hooks import Hooks
from fhir_server.service.resources import ResourceService, Unit
from fhir_server.storage.database import Database
from tests.pathway.conftest import (
    add_slot,
    appointments,
    patient,
    referral,
    search,
    soon,
    teams_without_slots,
)


def test_a_service_without_hooks_books_nothing(
    pathway_service: ResourceService, pathway_db: Database
) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-02", soon(3))
    plain = ResourceService(pathway_db)
    pid = plain.create("Patient", patient()).stored.id
    rid = plain.create("ServiceRequest", referral(f"Patient/{pid}")).stored.id
    assert appointments(plain, rid) == []


def test_a_failing_rule_rolls_back_the_write_that_triggered_it(pathway_db: Database) -> None:
    def refuse(unit: Unit, doc: dict[str, Any], before: dict[str, Any] | None) -> None:
        raise FhirError(409, "business-rule", "no")

    hooks = Hooks()
    hooks.on_after("Patient", refuse)
    service = ResourceService(pathway_db, hooks=hooks)
    with pytest.raises(FhirError):
        service.create("Patient", patient())
    assert search(service, "Patient") == []


def test_after_hooks_run_once_per_new_version_and_not_for_an_unchanged_write(
    pathway_db: Database,
) -> None:
    seen: list[tuple[str, str | None]] = []

    def record(unit: Unit, doc: dict[str, Any], before: dict[str, Any] | None) -> None:
        seen.append((doc["meta"]["versionId"], before["meta"]["versionId"] if before else None))

    hooks = Hooks()
    hooks.on_after("Patient", record)
    service = ResourceService(pathway_db, hooks=hooks)
    body = {**patient(), "id": "p1"}
    service.update("Patient", "p1", body)
    service.update("Patient", "p1", body)
    service.update("Patient", "p1", {**body, "gender": "male"})
    assert seen == [("1", None), ("2", "1")]


def test_before_hooks_change_what_is_stored(pathway_db: Database) -> None:
    def tag(unit: Unit, resource: dict[str, Any], current: object, batch: object) -> dict[str, Any]:
        return {**resource, "active": True}

    hooks = Hooks()
    hooks.on_before("Patient", tag)
    service = ResourceService(pathway_db, hooks=hooks)
    created = service.create("Patient", patient()).stored.id
    assert [p["active"] for p in search(service, "Patient", ("_id", created))] == [True]

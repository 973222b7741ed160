"""Complete exports at system, Patient and Group level: every resource once, counts right."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.bulk.conftest import Cohort, exported, id_sets, kick_off, seed, wait_manifest
from tests.conftest import LiveServer

SEEDED = "Organization,Practitioner,Patient,Observation,Condition,Encounter,Group"


@pytest.fixture(scope="module")
def cohort(bulk_server: LiveServer) -> Iterator[Cohort]:
    with httpx.Client(base_url=bulk_server.base, timeout=30) as client:
        yield seed(client)


def _export(fhir: httpx.Client, path: str, **params: str) -> dict[str, set[str]]:
    manifest = wait_manifest(fhir, kick_off(fhir, path, **params))
    return id_sets(exported(fhir, manifest))


def test_system_export_has_every_resource_of_the_types_once(
    fhir: httpx.Client, cohort: Cohort
) -> None:
    assert _export(fhir, "/$export", _type=SEEDED) == cohort.ids


def test_system_export_without_type_includes_every_stored_type(
    fhir: httpx.Client, cohort: Cohort
) -> None:
    found = _export(fhir, "/$export")
    for rtype, ids in cohort.ids.items():
        assert found[rtype] == ids


def test_patient_export_is_the_compartments_of_all_patients(
    fhir: httpx.Client, cohort: Cohort
) -> None:
    found = _export(fhir, "/Patient/$export")
    in_compartments = ("Patient", "Observation", "Condition", "Encounter", "Group")
    assert found == {t: cohort.ids[t] for t in in_compartments}  # Group: by its members


def test_group_export_is_the_compartments_of_its_members(
    fhir: httpx.Client, cohort: Cohort
) -> None:
    found = _export(fhir, f"/Group/{cohort.group}/$export")
    assert found["Patient"] == {cohort.a, cohort.b}
    assert len(found["Observation"]) == 4  # three of a, one of b, none of c
    assert set(found) == {"Patient", "Observation", "Condition", "Group"}


def test_manifest_describes_the_request(fhir: httpx.Client, cohort: Cohort) -> None:
    status = kick_off(fhir, "/$export", _type="Patient")
    manifest = wait_manifest(fhir, status)
    assert manifest["request"].endswith("/fhir/$export?_type=Patient")
    assert manifest["requiresAccessToken"] is False
    assert manifest["transactionTime"]
    assert manifest["error"] == []
    assert sum(item["count"] for item in manifest["output"]) == len(cohort.ids["Patient"])


def test_post_kick_off_takes_parameters(fhir: httpx.Client, cohort: Cohort) -> None:
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "Condition"},
            {"name": "_outputFormat", "valueString": "application/fhir+ndjson"},
        ],
    }
    headers = {"Prefer": "respond-async", "Content-Type": "application/fhir+json"}
    response = fhir.post("/$export", json=body, headers=headers)
    assert response.status_code == 202, response.text
    manifest = wait_manifest(fhir, response.headers["Content-Location"])
    assert id_sets(exported(fhir, manifest)) == {"Condition": cohort.ids["Condition"]}

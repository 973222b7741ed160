"""``_contained`` (R4 search 3.1.1.5.10): contained resources are searched only when asked,
and the containers are returned (``_containedType=container``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import STORES, LiveServer, fresh_url

FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@pytest.fixture(scope="module", params=STORES)
def fhir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    for url in fresh_url(str(request.param), tmp_path_factory.mktemp("contained"), "ivz_cont"):
        server = LiveServer(url).start()
        try:
            with httpx.Client(base_url=server.base, headers=FHIR_JSON, timeout=30) as client:
                yield client
        finally:
            server.stop()


def _create(client: httpx.Client, resource: dict[str, Any]) -> str:
    response = client.post(resource["resourceType"], json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _ids(client: httpx.Client, path: str, **params: str) -> set[str]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in response.json().get("entry", [])
        if e.get("search", {}).get("mode") == "match"
    }


@pytest.fixture(scope="module")
def world(fhir: httpx.Client) -> dict[str, str]:
    family = f"Taylor{uuid.uuid4().hex[:6]}"
    observation = _create(
        fhir,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "pain"},
            "contained": [{"resourceType": "Patient", "id": "p1", "name": [{"family": family}]}],
            "subject": {"reference": "#p1"},
        },
    )
    patient = _create(fhir, {"resourceType": "Patient", "name": [{"family": family}]})
    code = f"med-{uuid.uuid4().hex[:6]}"
    request = _create(
        fhir,
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "contained": [
                {
                    "resourceType": "Medication",
                    "id": "m",
                    "code": {"coding": [{"system": "http://example.org/med", "code": code}]},
                }
            ],
            "medicationReference": {"reference": "#m"},
            "subject": {"reference": f"Patient/{patient}"},
        },
    )
    return {
        "family": family,
        "code": code,
        "observation": f"Observation/{observation}",
        "patient": f"Patient/{patient}",
        "request": f"MedicationRequest/{request}",
    }


def test_contained_resources_are_not_searched_by_default(
    fhir: httpx.Client, world: dict[str, str]
) -> None:
    assert _ids(fhir, "Patient", family=world["family"]) == {world["patient"]}
    assert _ids(fhir, "Medication", code=world["code"]) == set()


def test_contained_true_returns_the_containers_of_matching_resources(
    fhir: httpx.Client, world: dict[str, str]
) -> None:
    found = _ids(fhir, "Patient", family=world["family"], _contained="true")
    assert found == {world["observation"]}
    assert _ids(fhir, "Medication", code=world["code"], _contained="true") == {world["request"]}


def test_contained_both_returns_matches_and_containers(
    fhir: httpx.Client, world: dict[str, str]
) -> None:
    found = _ids(fhir, "Patient", family=world["family"], _contained="both")
    assert found == {world["patient"], world["observation"]}


def test_contained_id_is_the_contained_resources_id(
    fhir: httpx.Client, world: dict[str, str]
) -> None:
    found = _ids(fhir, "Patient", _id="p1", family=world["family"], _contained="true")
    assert found == {world["observation"]}
    assert _ids(fhir, "Patient", _id="other", family=world["family"], _contained="true") == set()


def test_a_contained_match_needs_every_parameter(fhir: httpx.Client, world: dict[str, str]) -> None:
    params = {"family": world["family"], "gender": "female", "_contained": "true"}
    assert _ids(fhir, "Patient", **params) == set()


def test_contained_type_contained_is_refused_when_strict(
    fhir: httpx.Client, world: dict[str, str]
) -> None:
    params = {"family": world["family"], "_contained": "true", "_containedType": "contained"}
    strict = fhir.get("Patient", params=params, headers={"Prefer": "handling=strict"})
    assert strict.status_code == 400
    assert "_containedType" in strict.text
    lenient = fhir.get("Patient", params=params)
    assert lenient.status_code == 200
    assert "_containedType" in lenient.text


def test_an_update_that_drops_the_contained_resource_drops_its_index(
    fhir: httpx.Client, world: dict[str, str]
) -> None:
    family = f"Gone{uuid.uuid4().hex[:6]}"
    rid = _create(
        fhir,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "contained": [{"resourceType": "Patient", "id": "q", "name": [{"family": family}]}],
        },
    )
    assert _ids(fhir, "Patient", family=family, _contained="true") == {f"Observation/{rid}"}
    plain = {"resourceType": "Observation", "id": rid, "status": "final", "code": {"text": "x"}}
    assert fhir.put(f"Observation/{rid}", json=plain).status_code == 200
    assert _ids(fhir, "Patient", family=family, _contained="true") == set()


def test_a_chain_reaches_into_contained_resources(
    fhir: httpx.Client, world: dict[str, str]
) -> None:
    found = _ids(fhir, "MedicationRequest", **{"medication.code": world["code"]})
    assert found == {world["request"]}
    chained = {"subject:Patient.family": world["family"]}
    assert _ids(fhir, "Observation", **chained) == {world["observation"]}
    assert _ids(fhir, "Observation", **{"subject:Patient.family": "nobody"}) == set()


def test_a_chain_into_a_contained_resource_needs_the_referenced_one(fhir: httpx.Client) -> None:
    """The container holds a matching Patient, but its subject is another contained one."""
    family = f"Other{uuid.uuid4().hex[:6]}"
    _create(
        fhir,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "contained": [
                {"resourceType": "Group", "id": "g", "type": "person", "actual": True},
                {"resourceType": "Patient", "id": "p", "name": [{"family": family}]},
            ],
            "subject": {"reference": "#g"},
        },
    )
    assert _ids(fhir, "Observation", **{"subject:Patient.family": family}) == set()

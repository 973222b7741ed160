"""``_type``, ``_since`` and ``_typeFilter`` restrict what an export writes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.bulk.conftest import Cohort, create, exported, id_sets, kick_off, seed, wait_manifest
from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def cohort(bulk_server: LiveServer) -> Iterator[Cohort]:
    with httpx.Client(base_url=bulk_server.base, timeout=30) as client:
        yield seed(client)


def _export(fhir: httpx.Client, path: str, **params: str) -> dict[str, set[str]]:
    manifest = wait_manifest(fhir, kick_off(fhir, path, **params))
    return id_sets(exported(fhir, manifest))


def test_type_restricts_to_the_listed_types(fhir: httpx.Client, cohort: Cohort) -> None:
    found = _export(fhir, "/Patient/$export", _type="Condition,Encounter")
    assert found == {"Condition": cohort.ids["Condition"], "Encounter": cohort.ids["Encounter"]}


def test_since_keeps_only_later_changes(fhir: httpx.Client, cohort: Cohort) -> None:
    first = fhir.get(f"/Patient/{cohort.c}").json()["meta"]["lastUpdated"]
    time.sleep(0.05)
    late = create(fhir, {"resourceType": "Patient", "gender": "male"})
    found = _export(fhir, "/$export", _type="Patient", _since=first)
    assert found == {"Patient": {late}}


def test_type_filter_applies_the_search(fhir: httpx.Client, cohort: Cohort) -> None:
    found = _export(
        fhir,
        "/$export",
        _type="Observation,Condition",
        _typeFilter="Observation?code=http://loinc.org|8867-4",
    )
    assert len(found["Observation"]) == 2  # of a and of c
    assert found["Condition"] == cohort.ids["Condition"]  # no filter: all


def test_type_filters_of_one_type_are_ored(fhir: httpx.Client, cohort: Cohort) -> None:
    found = _export(
        fhir,
        "/$export",
        _type="Patient",
        _typeFilter=f"Patient?_id={cohort.a},Patient?_id={cohort.b}",
    )
    assert found == {"Patient": {cohort.a, cohort.b}}

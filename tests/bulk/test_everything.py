"""``Patient/{id}/$everything``: the Patient's compartment and referenced care resources only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.bulk.conftest import Cohort, seed
from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def cohort(bulk_server: LiveServer) -> Iterator[Cohort]:
    with httpx.Client(base_url=bulk_server.base, timeout=30) as client:
        yield seed(client)


def _entries(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (e["resource"]["resourceType"], e["resource"]["id"])
        for e in bundle.get("entry", [])
        if e["search"]["mode"] != "outcome"
    ]


def _all_pages(fhir: httpx.Client, url: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    while url:
        response = fhir.get(url)
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["type"] == "searchset"
        found += _entries(bundle)
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), "")
    return found


def _reference_ids(fhir: httpx.Client, patient: str) -> set[str]:
    return {r for t, r in _all_pages(fhir, f"/Observation?subject=Patient/{patient}")} | {
        r for t, r in _all_pages(fhir, f"/Condition?subject=Patient/{patient}")
    }


def test_everything_is_the_compartment_and_referenced_practitioners(
    fhir: httpx.Client, cohort: Cohort
) -> None:
    found = _all_pages(fhir, f"/Patient/{cohort.a}/$everything?_count=100")
    assert ("Patient", cohort.a) in found
    assert ("Practitioner", cohort.practitioner) in found
    records = {r for t, r in found if t in ("Observation", "Condition")}
    assert records == _reference_ids(fhir, cohort.a)
    assert ("Group", cohort.group) in found  # a is a member


def test_everything_has_nothing_of_other_patients(fhir: httpx.Client, cohort: Cohort) -> None:
    found = set(_all_pages(fhir, f"/Patient/{cohort.a}/$everything"))
    assert ("Patient", cohort.b) not in found and ("Patient", cohort.c) not in found
    others = _reference_ids(fhir, cohort.b) | _reference_ids(fhir, cohort.c)
    assert not {r for _, r in found} & others


def test_everything_pages_with_count(fhir: httpx.Client, cohort: Cohort) -> None:
    paged = _all_pages(fhir, f"/Patient/{cohort.a}/$everything?_count=2")
    whole = _all_pages(fhir, f"/Patient/{cohort.a}/$everything?_count=100")
    matches = [e for e in paged if e[0] != "Practitioner"]
    assert len(matches) == len(set(matches))
    assert set(paged) == set(whole)


def test_everything_type_restricts(fhir: httpx.Client, cohort: Cohort) -> None:
    found = _all_pages(fhir, f"/Patient/{cohort.a}/$everything?_type=Condition")
    assert {t for t, _ in found} == {"Condition"}


def test_everything_since_restricts(fhir: httpx.Client, cohort: Cohort) -> None:
    patient = fhir.get(f"/Patient/{cohort.a}").json()
    since = patient["meta"]["lastUpdated"]
    found = _all_pages(fhir, f"/Patient/{cohort.a}/$everything?_since={since.replace('+', '%2B')}")
    assert ("Patient", cohort.a) not in found  # not changed after its own lastUpdated


def test_everything_of_unknown_patient_is_404(fhir: httpx.Client) -> None:
    response = fhir.get("/Patient/no-such-patient/$everything")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(
    "query", ["start=2020-01-01", "_type=Nonsense", "_type=Practitioner", "_since=x"]
)
def test_everything_bad_parameter_is_400(fhir: httpx.Client, cohort: Cohort, query: str) -> None:
    response = fhir.get(f"/Patient/{cohort.a}/$everything?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"

"""Bad kick-offs are a 400 OperationOutcome; unknown jobs and groups a 404."""

from __future__ import annotations

import httpx
import pytest

from tests.bulk.conftest import ASYNC


def _outcome(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


def test_kick_off_without_prefer_async_is_400(fhir: httpx.Client) -> None:
    response = fhir.get("/$export", headers={"Accept": "application/fhir+json"})
    assert "respond-async" in _outcome(response, 400)


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"_type": "Nonsense"}, "_type"),
        ({"_type": "Patient,"}, "_type"),
        ({"_since": "yesterday"}, "_since"),
        ({"_since": "2026-01-01"}, "instant"),
        ({"_outputFormat": "text/csv"}, "_outputFormat"),
        ({"_typeFilter": "Observation"}, "_typeFilter"),
        ({"_typeFilter": "Observation?nonsense=1"}, "nonsense"),
        ({"_type": "Patient", "_typeFilter": "Observation?code=x"}, "_type"),
        ({"_bogus": "1"}, "_bogus"),
    ],
)
def test_bad_parameter_is_400(fhir: httpx.Client, params: dict[str, str], word: str) -> None:
    response = fhir.get("/$export", params=params, headers=ASYNC)
    assert word in _outcome(response, 400)


def test_patient_export_of_a_type_outside_the_compartment_is_400(fhir: httpx.Client) -> None:
    response = fhir.get("/Patient/$export", params={"_type": "Practitioner"}, headers=ASYNC)
    assert "compartment" in _outcome(response, 400)


def test_other_accept_is_400(fhir: httpx.Client) -> None:
    response = fhir.get("/$export", headers={"Prefer": "respond-async", "Accept": "text/csv"})
    _outcome(response, 400)


def test_unknown_group_is_404(fhir: httpx.Client) -> None:
    _outcome(fhir.get("/Group/no-such-group/$export", headers=ASYNC), 404)


def test_unknown_job_is_404(fhir: httpx.Client) -> None:
    _outcome(fhir.get("/$export-status/no-such-job"), 404)
    _outcome(fhir.delete("/$export-status/no-such-job"), 404)
    _outcome(fhir.get("/$export-file/no-such-job/Patient-1.ndjson"), 404)


def test_post_kick_off_with_other_resource_is_400(fhir: httpx.Client) -> None:
    headers = {**ASYNC, "Content-Type": "application/fhir+json"}
    response = fhir.post("/$export", json={"resourceType": "Patient"}, headers=headers)
    assert "Parameters" in _outcome(response, 400)


def test_post_kick_off_with_malformed_parameters_is_400(fhir: httpx.Client) -> None:
    headers = {**ASYNC, "Content-Type": "application/fhir+json"}
    for parameter in ([1], {"name": "_type"}, "x"):
        body = {"resourceType": "Parameters", "parameter": parameter}
        response = fhir.post("/$export", json=body, headers=headers)
        assert "parameter" in _outcome(response, 400)

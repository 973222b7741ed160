"""``$verdict``/``$amend-verdict`` over real HTTP (``ivz serve``), on both stores: the main
paths and every refusal, each with its status and a diagnostic that says what to do."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import STORES
from tests.pathway.case_builder import (
    CaseSpec,
    case_resources,
    live_client,
    post,
    team_resources,
    unique,
    verdict_parameters,
)


@pytest.fixture(scope="module", params=STORES)
def server_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """One real server per store for this module; every test writes cases of its own."""
    yield from live_client(str(request.param), tmp_path_factory.mktemp("verdict-http"))


@dataclass
class Cases:
    """A decidable case, one only booked, one on hold; fresh ids for every test."""

    ok: CaseSpec
    booked: CaseSpec
    hold: CaseSpec


@pytest.fixture()
def cases(server_client: httpx.Client) -> Cases:
    made = Cases(
        CaseSpec(unique("ok")),
        CaseSpec(unique("booked"), appointment="booked"),
        CaseSpec(unique("hold"), referral_status="on-hold", consent="deny"),
    )
    resources = team_resources("team-01")
    for spec in (made.ok, made.booked, made.hold):
        resources += case_resources(spec)
    post(server_client, resources)
    return made


@pytest.fixture()
def client(server_client: httpx.Client, cases: Cases) -> httpx.Client:
    return server_client


def _verdict(client: httpx.Client, referral: str, params: Any, op: str = "$verdict") -> Any:
    return client.post(f"/ServiceRequest/{referral}/{op}", json=params)


def _outcome(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["code"] == code
    diagnostics: str = issue["diagnostics"]
    return diagnostics


def _parameter(body: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(p["resource"] for p in body["parameter"] if p["name"] == name)
    return found


def test_verdict_returns_verdict_care_plan_and_completed_referral(
    client: httpx.Client, cases: Cases
) -> None:
    response = _verdict(client, cases.ok.referral, verdict_parameters())
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["name"] for p in body["parameter"]] == ["verdict", "carePlan", "referral"]
    verdict = _parameter(body, "verdict")
    assert verdict["resourceType"] == "Observation"
    assert _parameter(body, "carePlan")["supportingInfo"] == [
        {"reference": f"Observation/{verdict['id']}"}
    ]
    assert _parameter(body, "referral")["status"] == "completed"
    searched = client.get(
        "/Observation", params={"based-on": f"ServiceRequest/{cases.ok.referral}"}
    )
    assert verdict["id"] in {e["resource"]["id"] for e in searched.json()["entry"]}


def test_verdict_accepts_and_answers_xml(client: httpx.Client, cases: Cases) -> None:
    xml = (
        '<Parameters xmlns="http://hl7.org/fhir">'
        '<parameter><name value="outcome"/><valueCode value="surgery-confirmed"/></parameter>'
        '<parameter><name value="rationale"/><valueString value="Instability."/></parameter>'
        '<parameter><name value="team"/><valueReference>'
        '<reference value="HealthcareService/hs-team-01"/></valueReference></parameter>'
        "</Parameters>"
    )
    response = client.post(
        f"/ServiceRequest/{cases.ok.referral}/$verdict",
        content=xml,
        headers={"Content-Type": "application/fhir+xml", "Accept": "application/fhir+xml"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+xml")
    assert "surgery-confirmed" in response.text


def test_amend_verdict_over_http_amends(client: httpx.Client, cases: Cases) -> None:
    first = _verdict(client, cases.ok.referral, verdict_parameters()).json()
    params = verdict_parameters("surgery-confirmed", activities=(), reason="New imaging.")
    response = _verdict(client, cases.ok.referral, params, "$amend-verdict")
    assert response.status_code == 200, response.text
    verdict = _parameter(response.json(), "verdict")
    assert verdict["id"] == _parameter(first, "verdict")["id"]
    assert verdict["status"] == "amended" and verdict["meta"]["versionId"] == "2"


def test_unknown_referral_is_404(client: httpx.Client, cases: Cases) -> None:
    diagnostics = _outcome(_verdict(client, "nobody", verdict_parameters()), 404, "not-found")
    assert "ServiceRequest/nobody" in diagnostics


def test_not_a_second_opinion_referral_is_400(client: httpx.Client, cases: Cases) -> None:
    response = _verdict(client, cases.ok.surgery, verdict_parameters())
    assert "not a second-opinion referral" in _outcome(response, 400, "invalid")


def test_body_that_is_not_parameters_is_400(client: httpx.Client, cases: Cases) -> None:
    response = _verdict(client, cases.ok.referral, {"resourceType": "Patient"})
    assert "Parameters" in _outcome(response, 400, "invalid")


def test_no_fulfilled_appointment_is_409(client: httpx.Client, cases: Cases) -> None:
    response = _verdict(client, cases.booked.referral, verdict_parameters())
    assert "No fulfilled Appointment" in _outcome(response, 409, "business-rule")


def test_consent_on_hold_is_409(client: httpx.Client, cases: Cases) -> None:
    response = _verdict(client, cases.hold.referral, verdict_parameters())
    assert "Consent on hold" in _outcome(response, 409, "business-rule")


def test_verdict_already_recorded_is_409(client: httpx.Client, cases: Cases) -> None:
    assert _verdict(client, cases.ok.referral, verdict_parameters()).status_code == 200
    response = _verdict(client, cases.ok.referral, verdict_parameters())
    assert "$amend-verdict" in _outcome(response, 409, "business-rule")


def test_bad_outcome_code_is_422(client: httpx.Client, cases: Cases) -> None:
    response = _verdict(client, cases.ok.referral, verdict_parameters(outcome="maybe"))
    diagnostics = _outcome(response, 422, "invalid")
    assert "surgery-confirmed" in diagnostics and "maybe" in diagnostics


def test_missing_rationale_is_422(client: httpx.Client, cases: Cases) -> None:
    params = verdict_parameters()
    params["parameter"] = [p for p in params["parameter"] if p["name"] != "rationale"]
    response = _verdict(client, cases.ok.referral, params)
    assert "'rationale'" in _outcome(response, 422, "required")


def test_unresolvable_team_is_422(client: httpx.Client, cases: Cases) -> None:
    response = _verdict(
        client, cases.ok.referral, verdict_parameters(team="HealthcareService/none")
    )
    assert "does not resolve" in _outcome(response, 422, "invalid")


def test_team_of_the_wrong_type_is_422(client: httpx.Client, cases: Cases) -> None:
    response = _verdict(
        client, cases.ok.referral, verdict_parameters(team=f"Patient/{cases.ok.patient}")
    )
    assert "HealthcareService or Organization" in _outcome(response, 422, "invalid")


def test_amend_without_verdict_is_409(client: httpx.Client, cases: Cases) -> None:
    params = verdict_parameters(reason="typo")
    response = _verdict(client, cases.ok.referral, params, "$amend-verdict")
    assert "$verdict" in _outcome(response, 409, "business-rule")

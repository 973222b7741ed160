"""The pathway's operations follow the access rules: a team decides and views only the cases
booked with it; the case's other parties read the verdict through search."""

from __future__ import annotations

from fhir_server.service.transaction import put_bundle
from tests.access.conftest import World
from tests.pathway.case_builder import (
    CaseSpec,
    case_resources,
    team_resources,
    unique,
    verdict_parameters,
)

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _case(world: World) -> CaseSpec:
    spec = CaseSpec(unique("acc"))
    resources = team_resources("team-01") + team_resources("team-02") + case_resources(spec)
    with world.client("admin") as http:
        response = http.post("", json=put_bundle(resources), headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    return spec


def test_only_the_booked_team_may_record_the_verdict(world: World) -> None:
    spec = _case(world)
    path = f"ServiceRequest/{spec.referral}/$verdict"
    with world.client("clinic-02") as http:
        refused = http.post(path, json=verdict_parameters(), headers=FHIR_JSON)
    assert refused.status_code == 404
    with world.client("clinic-01") as http:
        decided = http.post(path, json=verdict_parameters(), headers=FHIR_JSON)
        assert decided.status_code == 200, decided.text
    based_on = {"based-on": f"ServiceRequest/{spec.referral}"}
    assert world.ids("clinic-02", "Observation", **based_on) == set()
    assert world.ids("clinic-02", "CarePlan", **based_on) == set()
    assert len(world.ids("clinic-01", "CarePlan", **based_on)) == 1
    assert len(world.ids("clinic-01", "Observation", **based_on)) == spec.assessments + 1


def test_pathway_view_is_the_booked_teams_only(world: World) -> None:
    spec = _case(world)
    with world.client("clinic-01") as http:
        mine = http.get(f"ServiceRequest/{spec.referral}/$pathway")
    with world.client("clinic-02") as http:
        other = http.get(f"ServiceRequest/{spec.referral}/$pathway")
    assert mine.status_code == 200, mine.text
    assert other.status_code == 404
    refs = {
        f"{e['resource']['resourceType']}/{e['resource'].get('id')}" for e in mine.json()["entry"]
    }
    assert f"ServiceRequest/{spec.referral}" in refs
    assert f"Patient/{spec.patient}" in refs


def test_program_report_is_for_administrators(world: World) -> None:
    with world.client("clinic-01") as http:
        assert http.get("$program-report").status_code == 403
    with world.client("admin") as http:
        assert http.get("$program-report").status_code == 200


def test_reindex_is_for_administrators(world: World) -> None:
    with world.client("insurer-a") as http:
        assert http.post("ServiceRequest/$reindex").status_code == 403


def test_only_the_booked_team_may_amend_the_verdict(world: World) -> None:
    spec = _case(world)
    with world.client("clinic-01") as http:
        first = http.post(
            f"ServiceRequest/{spec.referral}/$verdict",
            json=verdict_parameters(),
            headers=FHIR_JSON,
        )
        assert first.status_code == 200, first.text
    amended = verdict_parameters(outcome="surgery-confirmed", reason="Imaging re-read")
    path = f"ServiceRequest/{spec.referral}/$amend-verdict"
    with world.client("clinic-02") as http:
        assert http.post(path, json=amended, headers=FHIR_JSON).status_code == 404
    with world.client("clinic-01") as http:
        assert http.post(path, json=amended, headers=FHIR_JSON).status_code == 200


def test_booking_a_case_of_another_client_answers_404(world: World) -> None:
    spec = _case(world)
    with world.client("clinic-02") as http:
        response = http.post(f"ServiceRequest/{spec.referral}/$book", headers=FHIR_JSON)
    assert response.status_code == 404

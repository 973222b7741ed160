"""``$verdict`` and ``$amend-verdict`` as use cases, on both stores (the HTTP side is in
test_verdict_http.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway.verdict import amend_verdict, record_verdict
from fhir_server.service.resources import ResourceService
from fhir_server.storage.repository import StoredVersion
from tests.pathway.case_builder import (
    CaseSpec,
    case_resources,
    team_resources,
    verdict_parameters,
    write,
)

VERDICT = "https://ivz-bridge.example/fhir/CodeSystem/ivz-verdict"
OBSERVATION = "https://ivz-bridge.example/fhir/CodeSystem/ivz-observation"


def _doc(stored: StoredVersion) -> dict[str, Any]:
    assert stored.content is not None
    result: dict[str, Any] = jsonio.loads_trusted(stored.content)
    return result


@pytest.fixture()
def case(pathway_service: ResourceService) -> CaseSpec:
    spec = CaseSpec("c1")
    write(pathway_service, team_resources("team-01") + case_resources(spec))
    return spec


def _refusal(service: ResourceService, referral: str, params: dict[str, Any]) -> FhirError:
    with pytest.raises(FhirError) as caught:
        record_verdict(service, referral, params)
    return caught.value


def test_not_recommended_verdict_records_observation_plan_and_completes_referral(
    pathway_service: ResourceService, case: CaseSpec
) -> None:
    result = record_verdict(pathway_service, case.referral, verdict_parameters())
    verdict, plan, referral = _doc(result.verdict), _doc(result.care_plan), _doc(result.referral)
    assert verdict["valueCodeableConcept"]["coding"][0] == {
        "system": VERDICT,
        "code": "surgery-not-recommended",
        "display": "Operation nicht empfohlen",
    }
    assert verdict["basedOn"] == [{"reference": f"ServiceRequest/{case.referral}"}]
    assert verdict["focus"] == [{"reference": f"ServiceRequest/{case.surgery}"}]
    assert verdict["performer"][0]["reference"] == "Organization/org-team-01"
    assert verdict["note"][0]["text"].startswith("Chronification stage II")
    assert verdict["subject"] == {"reference": f"Patient/{case.patient}"}
    assert {d["reference"] for d in verdict["derivedFrom"]} == {
        f"Observation/{oid}" for oid in case.assessment_ids()
    }
    assert plan["status"] == "active" and plan["intent"] == "plan"
    assert plan["addresses"] == [{"reference": f"Condition/{case.condition}"}]
    assert plan["supportingInfo"] == [{"reference": f"Observation/{result.verdict.id}"}]
    assert [a["detail"]["code"]["coding"][0]["code"] for a in plan["activity"]] == [
        "8-918",
        "91251008",
    ]
    assert all(a["detail"]["status"] == "not-started" for a in plan["activity"])
    assert referral["status"] == "completed"


def test_confirmed_verdict_plan_refers_to_the_proposed_surgery(
    pathway_service: ResourceService, case: CaseSpec
) -> None:
    params = verdict_parameters("surgery-confirmed", activities=())
    result = record_verdict(pathway_service, case.referral, params)
    plan = _doc(result.care_plan)
    assert plan["activity"] == [{"reference": {"reference": f"ServiceRequest/{case.surgery}"}}]
    assert _doc(result.verdict)["valueCodeableConcept"]["coding"][0]["code"] == (
        "surgery-confirmed"
    )


def test_verdict_is_stored_and_readable(pathway_service: ResourceService, case: CaseSpec) -> None:
    result = record_verdict(pathway_service, case.referral, verdict_parameters())
    stored = pathway_service.read("Observation", result.verdict.id)
    assert _doc(stored)["status"] == "final"
    assert _doc(pathway_service.read("ServiceRequest", case.referral))["status"] == "completed"


def test_team_given_as_organization_is_the_performer(
    pathway_service: ResourceService, case: CaseSpec
) -> None:
    params = verdict_parameters(team="Organization/org-team-01")
    result = record_verdict(pathway_service, case.referral, params)
    assert _doc(result.verdict)["performer"][0]["reference"] == "Organization/org-team-01"


def test_second_verdict_is_refused_pointing_to_amend(
    pathway_service: ResourceService, case: CaseSpec
) -> None:
    record_verdict(pathway_service, case.referral, verdict_parameters())
    error = _refusal(pathway_service, case.referral, verdict_parameters())
    assert (error.status, error.code) == (409, "business-rule")
    assert "$amend-verdict" in error.diagnostics


def test_refusal_writes_nothing(pathway_service: ResourceService) -> None:
    spec = CaseSpec("c2", appointment="booked")
    write(pathway_service, team_resources("team-01") + case_resources(spec))
    _refusal(pathway_service, spec.referral, verdict_parameters())
    assert _doc(pathway_service.read("ServiceRequest", spec.referral))["status"] == "active"
    found = pathway_service.search.search(["Observation"], [("code", f"{VERDICT}|x")])
    assert found.matches == []


def test_rejected_consent_resource_puts_the_verdict_on_hold(
    pathway_service: ResourceService,
) -> None:
    spec = CaseSpec("c3", consent="deny")
    write(pathway_service, team_resources("team-01") + case_resources(spec))
    error = _refusal(pathway_service, spec.referral, verdict_parameters())
    assert error.status == 409 and "consent" in error.diagnostics.lower()


def test_unknown_activity_code_is_refused(pathway_service: ResourceService, case: CaseSpec) -> None:
    params = verdict_parameters(activities=(("http://snomed.info/sct", "387713003"),))
    error = _refusal(pathway_service, case.referral, params)
    assert (error.status, error.code) == (422, "invalid")
    assert "ivz-treatment" in error.diagnostics


def test_activity_below_an_ops_treatment_code_is_accepted(
    pathway_service: ResourceService, case: CaseSpec
) -> None:
    params = verdict_parameters(activities=(("http://fhir.de/CodeSystem/bfarm/ops", "8-918.01"),))
    result = record_verdict(pathway_service, case.referral, params)
    assert len(_doc(result.care_plan)["activity"]) == 1


def test_unknown_parameter_is_refused(pathway_service: ResourceService, case: CaseSpec) -> None:
    params = verdict_parameters()
    params["parameter"].append({"name": "outcom", "valueCode": "surgery-confirmed"})
    error = _refusal(pathway_service, case.referral, params)
    assert error.status == 422 and "outcom" in error.diagnostics


def test_amend_makes_a_new_amended_version_and_revises_the_plan(
    pathway_service: ResourceService, case: CaseSpec
) -> None:
    first = record_verdict(pathway_service, case.referral, verdict_parameters())
    params = verdict_parameters(
        "surgery-confirmed", activities=(), reason="Imaging showed instability."
    )
    amended = amend_verdict(pathway_service, case.referral, params)
    verdict = _doc(amended.verdict)
    assert amended.verdict.id == first.verdict.id
    assert amended.verdict.version_id == 2
    assert verdict["status"] == "amended"
    assert verdict["valueCodeableConcept"]["coding"][0]["code"] == "surgery-confirmed"
    assert verdict["note"][-1]["text"] == "Amended: Imaging showed instability."
    old_plan = _doc(pathway_service.read("CarePlan", first.care_plan.id))
    assert old_plan["status"] == "revoked"
    plan = _doc(amended.care_plan)
    assert plan["replaces"] == [{"reference": f"CarePlan/{first.care_plan.id}"}]
    assert plan["activity"] == [{"reference": {"reference": f"ServiceRequest/{case.surgery}"}}]


def test_amend_without_a_verdict_is_refused(
    pathway_service: ResourceService, case: CaseSpec
) -> None:
    with pytest.raises(FhirError) as caught:
        amend_verdict(pathway_service, case.referral, verdict_parameters(reason="typo"))
    assert caught.value.status == 409 and "$verdict" in caught.value.diagnostics


def test_amend_without_reason_is_refused(pathway_service: ResourceService, case: CaseSpec) -> None:
    record_verdict(pathway_service, case.referral, verdict_parameters())
    with pytest.raises(FhirError) as caught:
        amend_verdict(pathway_service, case.referral, verdict_parameters())
    assert (caught.value.status, caught.value.code) == (422, "required")
    assert "reason" in caught.value.diagnostics


def test_concurrent_verdicts_record_one_and_refuse_the_other(
    pathway_service: ResourceService, case: CaseSpec
) -> None:
    def attempt(_: int) -> int:
        try:
            record_verdict(pathway_service, case.referral, verdict_parameters())
            return 200
        except FhirError as exc:
            return exc.status

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(attempt, range(4)))
    assert statuses == [200, 409, 409, 409]
    found = pathway_service.search.search(
        ["Observation"],
        [("based-on", f"ServiceRequest/{case.referral}"), ("code", f"{OBSERVATION}|verdict")],
    )
    assert len(found.matches) == 1

"""Assessment Observations attach to the patient's single open referral (docs/pathway.md)."""

from __future__ import annotations

from typing import Any

from adapters.hl7v2.convert import convert
from fhir_server.service import transaction
from fhir_server.service.resources import ResourceService
from tests.adapters.hl7v2 import message, segment
from tests.pathway.conftest import patient, read, referral

NRS = {"system": "http://loinc.org", "code": "72514-3"}
KVNR = "A123456780"


def _observation(patient_id: str, coding: dict[str, str] = NRS) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [coding]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-11-25T10:00:00+01:00",
        "valueInteger": 7,
    }


def _case(service: ResourceService, kvnr: str | None = KVNR) -> tuple[str, str]:
    pid = service.create("Patient", patient(kvnr=kvnr)).stored.id
    rid = service.create("ServiceRequest", referral(f"Patient/{pid}")).stored.id
    return pid, rid


def _based_on(service: ResourceService, observation: dict[str, Any]) -> list[Any]:
    stored = service.create("Observation", observation).stored
    return list(read(service, "Observation", stored.id).get("basedOn", []))


def test_an_assessment_attaches_to_the_patients_open_referral(
    pathway_service: ResourceService,
) -> None:
    pid, rid = _case(pathway_service)
    assert _based_on(pathway_service, _observation(pid)) == [{"reference": f"ServiceRequest/{rid}"}]


def test_an_assessment_for_another_patient_record_with_the_same_kvnr_attaches(
    pathway_service: ResourceService,
) -> None:
    _, rid = _case(pathway_service)
    clinic_record = pathway_service.create("Patient", patient(kvnr=KVNR)).stored.id
    assert _based_on(pathway_service, _observation(clinic_record)) == [
        {"reference": f"ServiceRequest/{rid}"}
    ]


def test_a_patient_with_two_open_referrals_gets_no_guess(pathway_service: ResourceService) -> None:
    pid, _ = _case(pathway_service)
    pathway_service.create("ServiceRequest", referral(f"Patient/{pid}"))
    assert _based_on(pathway_service, _observation(pid)) == []


def test_a_completed_referral_is_not_open(pathway_service: ResourceService) -> None:
    pid = pathway_service.create("Patient", patient()).stored.id
    pathway_service.create("ServiceRequest", referral(f"Patient/{pid}", status="completed"))
    assert _based_on(pathway_service, _observation(pid)) == []


def test_an_observation_outside_the_assessment_codes_stays_as_it_is(
    pathway_service: ResourceService,
) -> None:
    pid, _ = _case(pathway_service)
    cholesterol = {"system": "http://loinc.org", "code": "2093-3"}
    assert _based_on(pathway_service, _observation(pid, cholesterol)) == []


def test_a_program_code_counts_as_an_assessment(pathway_service: ResourceService) -> None:
    pid, rid = _case(pathway_service)
    stage = {
        "system": "https://ivz-bridge.example/fhir/CodeSystem/ivz-observation",
        "code": "rmdq",
    }
    assert _based_on(pathway_service, _observation(pid, stage)) == [
        {"reference": f"ServiceRequest/{rid}"}
    ]


def test_an_observation_already_based_on_a_referral_is_left_alone(
    pathway_service: ResourceService,
) -> None:
    pid, _ = _case(pathway_service)
    other = pathway_service.create("ServiceRequest", referral(f"Patient/{pid}")).stored.id
    named = {**_observation(pid), "basedOn": [{"reference": f"ServiceRequest/{other}"}]}
    assert _based_on(pathway_service, named) == [{"reference": f"ServiceRequest/{other}"}]


def test_an_hl7_oru_result_finds_its_case_by_kvnr(pathway_service: ResourceService) -> None:
    _, rid = _case(pathway_service)
    raw = message(
        "MSH|^~\\&|KIS|KLINIK|IVZ|ZM|20261125093000||ORU^R01^ORU_R01|O1|P|2.5.1",
        f"PID|1||4711^^^KLINIKUM^MR~{KVNR}^^^&1.2.276.0.76.4.8&ISO||Muster^Erika||19660504|F",
        "OBR|1|P-1^KIS|F-1^KIS|72514-3^Pain severity^LN|||20261125080000",
        segment(
            "OBX",
            {1: "1", 2: "NM", 3: "72514-3^Pain severity 0-10^LN", 5: "7", 11: "F"},
        ),
    )
    _, results = transaction.process(pathway_service, convert(raw).bundle, "")
    observations = [
        read(pathway_service, "Observation", r.stored.id)
        for r in results
        if r.stored is not None and r.stored.resource_type == "Observation"
    ]
    assert len(observations) == 1
    assert {"reference": f"ServiceRequest/{rid}"} in observations[0]["basedOn"]

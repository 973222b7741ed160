"""A referral that cannot be booked is stored, and the write says so (OperationOutcome warning)."""

from __future__ import annotations

import httpx

from fhir_server.service.resources import ResourceService
from tests.pathway.conftest import patient, referral, soon, teams_without_slots


def test_a_post_asking_for_the_outcome_is_warned_that_nothing_was_booked(
    pathway_service: ResourceService, pathway_client: httpx.Client
) -> None:
    teams_without_slots(pathway_service)
    made = pathway_client.post("/Patient", json=patient("24103"))
    answer = pathway_client.post(
        "/ServiceRequest",
        json=referral(f"Patient/{made.json()['id']}", soon(0)),
        headers={"Prefer": "return=OperationOutcome"},
    )
    assert answer.status_code == 201
    warnings = [i for i in answer.json()["issue"] if i["severity"] == "warning"]
    assert len(warnings) == 1 and "not booked" in warnings[0]["diagnostics"]


def test_a_transaction_entry_carries_the_warning_of_its_own_referral(
    pathway_service: ResourceService, pathway_client: httpx.Client
) -> None:
    teams_without_slots(pathway_service)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:3f1b2c3d-0000-4000-8000-00000000000a",
                "resource": patient("24103"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": referral("urn:uuid:3f1b2c3d-0000-4000-8000-00000000000a", soon(0)),
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
        ],
    }
    answer = pathway_client.post("", json=bundle)
    assert answer.status_code == 200, answer.text
    patient_entry, referral_entry = answer.json()["entry"]
    assert "outcome" not in patient_entry["response"]
    (issue,) = referral_entry["response"]["outcome"]["issue"]
    assert issue["severity"] == "warning" and "not booked" in issue["diagnostics"]

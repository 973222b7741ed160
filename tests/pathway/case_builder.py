"""Second-opinion cases as plain FHIR transaction Bundles, for the verdict/view/report tests.

Every resource gets a client-chosen id (PUT), so a test knows every id up front. No Slots are
written: the automatic booking finds none and books nothing; the Appointment is ours.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fhir_server.service.resources import ResourceService
from fhir_server.service.transaction import process, put_bundle
from tests.conftest import LiveServer, fresh_url

BASE = "https://ivz-bridge.example/fhir"
SNOMED = "http://snomed.info/sct"
OPS = "http://fhir.de/CodeSystem/bfarm/ops"
TEAM_SYSTEM = f"{BASE}/sid/team"
WITHIN_48H = f"{BASE}/StructureDefinition/ivz-booking-within-48h"


@dataclass
class CaseSpec:
    """One referral and what happened to it so far."""

    key: str
    team: str | None = "team-01"
    appointment: str | None = "fulfilled"
    authored: str = "2026-03-02T08:00:00+00:00"
    start: str = "2026-03-03T09:00:00+00:00"
    birth: str = "1968-04-12"
    gender: str = "female"
    consent: str | None = "permit"
    referral_status: str = "active"
    assessments: int = 2
    within48h_extension: bool | None = None

    @property
    def referral(self) -> str:
        return f"{self.key}-referral"

    @property
    def patient(self) -> str:
        return f"{self.key}-patient"

    @property
    def surgery(self) -> str:
        return f"{self.key}-surgery"

    @property
    def condition(self) -> str:
        return f"{self.key}-condition"

    @property
    def appointment_id(self) -> str:
        return f"{self.key}-appointment"

    def assessment_ids(self) -> list[str]:
        return [f"{self.key}-assessment-{n}" for n in range(self.assessments)]


def team_id(team: str) -> str:
    return f"hs-{team}"


def team_resources(team: str, name: str | None = None) -> list[dict[str, Any]]:
    """A team: its Organization and HealthcareService (same team identifier)."""
    ident = [{"system": TEAM_SYSTEM, "value": team}]
    label = name or f"Schmerzzentrum {team}"
    return [
        {"resourceType": "Organization", "id": f"org-{team}", "identifier": ident, "name": label},
        {
            "resourceType": "HealthcareService",
            "id": team_id(team),
            "identifier": ident,
            "active": True,
            "name": label,
            "providedBy": {"reference": f"Organization/org-{team}"},
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/service-type",
                            "code": "503",
                        }
                    ]
                }
            ],
        },
    ]


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def case_resources(spec: CaseSpec) -> list[dict[str, Any]]:
    """Patient, Coverage, Condition, Consent, proposed surgery, referral, appointment,
    assessments: what a referral from an insurer plus one team visit leave behind."""
    patient = f"Patient/{spec.patient}"
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": spec.patient,
            "identifier": [{"system": "http://fhir.de/sid/gkv/kvid-10", "value": "A123456780"}],
            "name": [{"family": "Muster", "given": [spec.key]}],
            "gender": spec.gender,
            "birthDate": spec.birth,
            "address": [{"postalCode": "10115", "city": "Berlin", "country": "DE"}],
        },
        {
            "resourceType": "Coverage",
            "id": f"{spec.key}-coverage",
            "status": "active",
            "beneficiary": {"reference": patient},
            "payor": [{"display": "Techniker Krankenkasse"}],
        },
        {
            "resourceType": "Condition",
            "id": spec.condition,
            "clinicalStatus": _concept(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
            ),
            "code": _concept(SNOMED, "278860009", "Chronic low back pain"),
            "subject": {"reference": patient},
        },
        {
            "resourceType": "ServiceRequest",
            "id": spec.surgery,
            "status": "active",
            "intent": "proposal",
            "category": [_concept(SNOMED, "387713003", "Surgical procedure")],
            "code": {"coding": [{"system": OPS, "version": "2026", "code": "5-836.30"}]},
            "subject": {"reference": patient},
        },
        {
            "resourceType": "ServiceRequest",
            "id": spec.referral,
            "status": spec.referral_status,
            "intent": "order",
            "category": [_concept(SNOMED, "3457005", "Patient referral")],
            "code": _concept(SNOMED, "11429006", "Consultation"),
            "reasonCode": [
                _concept("http://terminology.hl7.org/CodeSystem/v2-0336", "S", "Second Opinion")
            ],
            "subject": {"reference": patient},
            "authoredOn": spec.authored,
            "reasonReference": [{"reference": f"Condition/{spec.condition}"}],
            "supportingInfo": [{"reference": f"ServiceRequest/{spec.surgery}"}],
            "insurance": [{"reference": f"Coverage/{spec.key}-coverage"}],
        },
    ]
    if spec.consent is not None:
        out.append(_consent(spec, patient))
    if spec.appointment is not None:
        out.append(_appointment(spec, patient))
    for n, oid in enumerate(spec.assessment_ids()):
        out.append(
            {
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "category": [
                    _concept("http://terminology.hl7.org/CodeSystem/observation-category", "survey")
                ],
                "code": _concept("http://loinc.org", "72514-3", "Pain severity 0-10"),
                "subject": {"reference": patient},
                "basedOn": [{"reference": f"ServiceRequest/{spec.referral}"}],
                "effectiveDateTime": f"2026-03-03T10:{n:02d}:00+00:00",
                "valueInteger": 6 + n % 3,
            }
        )
    return out


def _consent(spec: CaseSpec, patient: str) -> dict[str, Any]:
    permit = spec.consent == "permit"
    return {
        "resourceType": "Consent",
        "id": f"{spec.key}-consent",
        "status": "active" if permit else "rejected",
        "scope": _concept("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
        "category": [_concept("http://loinc.org", "59284-0", "Patient Consent")],
        "patient": {"reference": patient},
        "dateTime": spec.authored,
        "policyRule": _concept(
            "http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN" if permit else "OPTOUT"
        ),
        "provision": {"type": spec.consent},
    }


def _appointment(spec: CaseSpec, patient: str) -> dict[str, Any]:
    participants: list[dict[str, Any]] = [{"actor": {"reference": patient}, "status": "accepted"}]
    if spec.team is not None:
        participants.append(
            {
                "actor": {"reference": f"HealthcareService/{team_id(spec.team)}"},
                "status": "accepted",
            }
        )
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": spec.appointment_id,
        "status": spec.appointment,
        "basedOn": [{"reference": f"ServiceRequest/{spec.referral}"}],
        "start": spec.start,
        "end": spec.start.replace("T09:", "T11:"),
        "participant": participants,
    }
    if spec.within48h_extension is not None:
        appointment["extension"] = [{"url": WITHIN_48H, "valueBoolean": spec.within48h_extension}]
    return appointment


def write(service: ResourceService, resources: list[dict[str, Any]]) -> None:
    """Store through the service layer, as one transaction."""
    process(service, put_bundle(resources), "http://test.example/fhir")


def post(client: httpx.Client, resources: list[dict[str, Any]]) -> None:
    """Store over HTTP, as one transaction Bundle."""
    response = client.post("/", json=put_bundle(resources))
    assert response.status_code == 200, response.text


def verdict_parameters(
    outcome: str = "surgery-not-recommended",
    rationale: str = "Chronification stage II; multimodal therapy not yet tried.",
    team: str = "HealthcareService/hs-team-01",
    activities: tuple[tuple[str, str], ...] = ((OPS, "8-918"), (SNOMED, "91251008")),
    reason: str | None = None,
) -> dict[str, Any]:
    """The ``$verdict`` input; ``reason`` makes it ``$amend-verdict``'s."""
    params: list[dict[str, Any]] = [
        {"name": "outcome", "valueCode": outcome},
        {"name": "rationale", "valueString": rationale},
        {"name": "team", "valueReference": {"reference": team}},
    ]
    for system, code in activities:
        coding: dict[str, Any] = {"system": system, "code": code}
        if system == OPS:
            coding["version"] = "2026"
        params.append({"name": "activity", "valueCodeableConcept": {"coding": [coding]}})
    if reason is not None:
        params.append({"name": "reason", "valueString": reason})
    return {"resourceType": "Parameters", "parameter": params}


def live_client(store: str, tmp_dir: Path) -> Iterator[httpx.Client]:
    """One ``ivz serve`` on a fresh database for a whole test module: starting a server per
    test costs more than the tests themselves on a loaded machine."""
    urls = fresh_url(store, tmp_dir)
    live = LiveServer(next(urls)).start()
    try:
        with httpx.Client(
            base_url=live.base, timeout=60, headers={"Accept": "application/fhir+json"}
        ) as client:
            yield client
    finally:
        live.stop()
        next(urls, None)  # drops the PostgreSQL schema


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"

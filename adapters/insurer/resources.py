"""The FHIR R4 resources a referral becomes, with ids derived from the source identifiers.

Ids are UUIDv5 of the identifiers that make a resource the same one (insurer IK + referral id,
KVNR, IK, LANR), so a re-sent row lands on the same resources. Content never holds the time of
the import, only data from the row: the same row always yields the same resources.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from adapters.identity import insurer_mark
from adapters.insurer.referral import Referral
from fhir_server.fhir.ids import KVNR_SYSTEM as KVNR_SYSTEM
from fhir_server.fhir.ids import identifier_id

IK_SYSTEM = "http://fhir.de/sid/arge-ik/iknr"
LANR_SYSTEM = "https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR"
ICD10GM_SYSTEM = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
OPS_SYSTEM = "http://fhir.de/CodeSystem/bfarm/ops"
#: Referral identifier system per insurer: this base + the insurer's IK.
REFERRAL_SYSTEM_BASE = "https://ivz-bridge.example/sid/referral/"
#: Why a referral is on hold (R4 ServiceRequest has no statusReason; see the docs).
STATUS_REASON_URL = "http://hl7.org/fhir/StructureDefinition/request-statusReason"
STATUS_REASON_SYSTEM = "https://ivz-bridge.example/CodeSystem/referral-status-reason"
GENDER_DE_URL = "http://fhir.de/StructureDefinition/gender-amtlich-de"
GENDER_DE_SYSTEM = "http://fhir.de/CodeSystem/gender-amtlich-de"

_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_SNOMED = "http://snomed.info/sct"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://ivz-bridge.example/adapters/insurer")

#: Amtliches Geschlecht -> (administrative gender, gender-amtlich-de code and display).
_GENDER = {
    "M": ("male", None),
    "W": ("female", None),
    "D": ("other", ("D", "divers")),
    "X": ("unknown", ("X", "unbestimmt")),
}
_ON_HOLD = {
    "deny": ("consent-refused", "Patient refused data sharing; nothing is shared onward"),
    None: ("consent-missing", "No data-sharing consent in the export; nothing is shared onward"),
}


@lru_cache(maxsize=1 << 16)
def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


def referral_system(insurer_ik: str) -> str:
    return REFERRAL_SYSTEM_BASE + insurer_ik


@dataclass(frozen=True, slots=True)
class Identity:
    """A resource known by a business identifier; ``fallback_id`` names it when we create it."""

    resource_type: str
    system: str
    value: str

    @property
    def fallback_id(self) -> str:
        """For a Patient ``fhir_server.fhir.ids.patient_id(KVNR)``, the id the HL7 v2 adapter
        also gives a new Patient with that KVNR (one Patient per person)."""
        return identifier_id(self.resource_type, self.system, self.value)


def patient_identity(kvnr: str) -> Identity:
    return Identity("Patient", KVNR_SYSTEM, kvnr)


def organization_identity(ik: str) -> Identity:
    return Identity("Organization", IK_SYSTEM, ik)


def practitioner_identity(lanr: str) -> Identity:
    return Identity("Practitioner", LANR_SYSTEM, lanr)


def coverage_id(insurer_ik: str, kvnr: str) -> str:
    return stable_id("Coverage", insurer_ik, kvnr)


def referral_request_id(r: Referral) -> str:
    return stable_id("ServiceRequest", "referral", *r.key)


def proposal_id(r: Referral) -> str:
    return stable_id("ServiceRequest", "proposal", *r.key)


def consent_id(r: Referral) -> str:
    return stable_id("Consent", *r.key)


def condition_id(r: Referral, icd_code: str) -> str:
    return stable_id("Condition", *r.key, icd_code)


def _ref(resource_type: str, resource_id: str, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": f"{resource_type}/{resource_id}"}
    if display:
        ref["display"] = display
    return ref


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _version(policy: str, r: Referral) -> str:
    return str(r.received_at.year) if policy == "received-year" else policy


def patient(r: Referral) -> dict[str, Any]:
    """Patient as in the ISiK/de-basis examples: KVNR (KVZ10), official name, gender-amtlich-de;
    its address and telecoms marked as the insurer's (``adapters.identity.insurer_mark``)."""
    gender, amtlich = _GENDER[r.sex]
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [
            {
                "type": _concept("http://fhir.de/CodeSystem/identifier-type-de-basis", "KVZ10"),
                "system": KVNR_SYSTEM,
                "value": r.kvnr,
            }
        ],
        "name": [{"use": "official", "family": r.family, "given": list(r.given)}],
        "gender": gender,
        "birthDate": r.birth_date.isoformat(),
    }
    if amtlich is not None:
        code, display = amtlich
        res["_gender"] = {
            "extension": [
                {
                    "url": GENDER_DE_URL,
                    "valueCoding": {"system": GENDER_DE_SYSTEM, "code": code, "display": display},
                }
            ]
        }
    telecom = [
        insurer_mark({"system": system, "value": value, "use": "home"})
        for system, value in (("phone", r.phone), ("email", r.email))
        if value
    ]
    if telecom:
        res["telecom"] = telecom
    if r.postal_code or r.city:
        address: dict[str, Any] = {"use": "home", "type": "both"}
        if r.city:
            address["city"] = r.city
        if r.postal_code:
            address["postalCode"] = r.postal_code
        address["country"] = "DE"
        res["address"] = [insurer_mark(address)]
    return res


def organization(ik: str, name: str | None, insurer: bool) -> dict[str, Any]:
    kind = ("ins", "Insurance Company") if insurer else ("prov", "Healthcare Provider")
    res: dict[str, Any] = {
        "resourceType": "Organization",
        "identifier": [
            {"type": _concept(_V2_0203, "XX"), "system": IK_SYSTEM, "value": ik},
        ],
        "active": True,
        "type": [
            _concept("http://terminology.hl7.org/CodeSystem/organization-type", *kind),
        ],
    }
    if name:
        res["name"] = name
    return res


def practitioner(lanr: str, name: str | None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Practitioner",
        "identifier": [
            {"type": _concept(_V2_0203, "LANR"), "system": LANR_SYSTEM, "value": lanr},
        ],
    }
    if name:
        # The export gives one free-text name; splitting it into parts would be a guess.
        res["name"] = [{"use": "official", "text": name}]
    return res


@dataclass(frozen=True, slots=True)
class Links:
    """Ids of the resources a referral's resources point to (resolved before building)."""

    patient: str
    insurer: str
    insurer_name: str
    coverage: str
    hospital: str | None
    surgeon: str | None


def coverage(r: Referral, links: Links) -> dict[str, Any]:
    """GKV coverage as in ISiK VersicherungsverhaeltnisGesetzlich: payor by IK, KVNR."""
    return {
        "resourceType": "Coverage",
        "status": "active",
        "type": _concept("http://fhir.de/CodeSystem/versicherungsart-de-basis", "GKV"),
        "subscriberId": r.kvnr,
        "beneficiary": _ref("Patient", links.patient),
        "payor": [
            {
                **_ref("Organization", links.insurer, links.insurer_name),
                "identifier": {
                    "type": _concept(_V2_0203, "XX"),
                    "system": IK_SYSTEM,
                    "value": r.insurer_ik,
                },
            }
        ],
    }


def condition(r: Referral, icd_code: str, links: Links, icd_version: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
        ),
        "code": {
            "coding": [
                {
                    "system": ICD10GM_SYSTEM,
                    "version": _version(icd_version, r),
                    "code": icd_code,
                }
            ]
        },
        "subject": _ref("Patient", links.patient),
        "recordedDate": r.received_at.date().isoformat(),
    }


def proposal(r: Referral, links: Links, ops_version: str) -> dict[str, Any]:
    """The surgery the indicating surgeon proposed: the indication the second opinion judges."""
    code: dict[str, Any] = {
        "coding": [{"system": OPS_SYSTEM, "version": _version(ops_version, r), "code": r.ops_code}]
    }
    if r.ops_text:
        code["text"] = r.ops_text
    res: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "proposal",
        "category": [_concept(_SNOMED, "387713003", "Surgical procedure")],
        "code": code,
        "subject": _ref("Patient", links.patient),
    }
    if r.planned_date:
        res["occurrenceDateTime"] = r.planned_date.isoformat()
    if links.surgeon:
        res["requester"] = _ref("Practitioner", links.surgeon, r.surgeon_name)
    elif r.surgeon_name:
        res["requester"] = {"display": r.surgeon_name}
    if links.hospital:
        res["performer"] = [_ref("Organization", links.hospital, r.hospital_name)]
    elif r.hospital_name:
        res["performer"] = [{"display": r.hospital_name}]
    res["reasonReference"] = [_ref("Condition", condition_id(r, c)) for c in r.diagnoses]
    res["insurance"] = [_ref("Coverage", links.coverage)]
    return res


def referral_request(r: Referral, links: Links) -> dict[str, Any]:
    """The second-opinion referral that starts the pathway; on hold without consent."""
    res: dict[str, Any] = {"resourceType": "ServiceRequest"}
    if r.consent != "permit":
        code, text = _ON_HOLD[r.consent]
        res["extension"] = [
            {
                "url": STATUS_REASON_URL,
                "valueCodeableConcept": {**_concept(STATUS_REASON_SYSTEM, code), "text": text},
            }
        ]
    res |= {
        "identifier": [{"system": referral_system(r.insurer_ik), "value": r.referral_id}],
        "status": "active" if r.consent == "permit" else "on-hold",
        "intent": "order",
        "category": [_concept(_SNOMED, "3457005", "Patient referral")],
        "code": _concept(_SNOMED, "11429006", "Consultation"),
        "subject": _ref("Patient", links.patient),
        "authoredOn": r.received_at.isoformat(),
        "requester": _ref("Organization", links.insurer, links.insurer_name),
        "reasonCode": [
            _concept("http://terminology.hl7.org/CodeSystem/v2-0336", "S", "Second Opinion")
        ],
        "reasonReference": [_ref("Condition", condition_id(r, c)) for c in r.diagnoses],
        "insurance": [_ref("Coverage", links.coverage)],
        "supportingInfo": [_ref("ServiceRequest", proposal_id(r))],
    }
    if r.notes:
        res["note"] = [{"text": r.notes}]
    return res


def consent(r: Referral, links: Links) -> dict[str, Any] | None:
    """The patient's answer on data sharing for this referral; None when there is none."""
    if r.consent is None:
        return None
    permit = r.consent == "permit"
    return {
        "resourceType": "Consent",
        "status": "active" if permit else "rejected",
        "scope": _concept(
            "http://terminology.hl7.org/CodeSystem/consentscope",
            "patient-privacy",
            "Privacy Consent",
        ),
        "category": [_concept("http://loinc.org", "59284-0", "Patient Consent")],
        "patient": _ref("Patient", links.patient),
        "dateTime": r.received_at.isoformat(),
        "performer": [_ref("Patient", links.patient)],
        "organization": [_ref("Organization", links.insurer, links.insurer_name)],
        "policyRule": _concept(
            "http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN" if permit else "OPTOUT"
        ),
        "provision": {
            "type": r.consent,
            "purpose": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "code": "TREAT",
                    "display": "treatment",
                }
            ],
            "data": [
                {
                    "meaning": "related",
                    "reference": _ref("ServiceRequest", referral_request_id(r)),
                }
            ],
        },
    }

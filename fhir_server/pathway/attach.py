"""Assessment Observations find their case: an Observation with an assessment code and no
basedOn to a second-opinion referral is attached to the patient's single open referral
(same Patient id, or a Patient with the same KVNR). HL7 ORU results arrive this way."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from fhir_server.fhir import jsonio
from fhir_server.pathway.program import KVNR_SYSTEM, OPEN_REFERRAL
from fhir_server.pathway.referral import is_second_opinion, patient_id, reference_id
from fhir_server.service.resources import Unit
from fhir_server.storage.repository import StoredVersion


@cache
def assessment_codes() -> frozenset[tuple[str, str]]:
    """(system, code) of the ValueSet ivz-assessment-code (``data/assessment-codes.csv``)."""
    text = resources.files("fhir_server.pathway").joinpath("data/assessment-codes.csv")
    rows = csv.DictReader(text.read_text("utf-8").splitlines())
    return frozenset((r["system"], r["code"]) for r in rows)


def is_assessment(observation: dict[str, Any]) -> bool:
    code = observation.get("code")
    codings = code.get("coding", []) if isinstance(code, dict) else []
    wanted = assessment_codes()
    return any(isinstance(c, dict) and (c.get("system"), c.get("code")) in wanted for c in codings)


def _stored(unit: Unit, resource_type: str, resource_id: str) -> dict[str, Any] | None:
    current = unit.current(resource_type, resource_id)
    if current is None or current.deleted or current.content is None:
        return None
    found: dict[str, Any] = jsonio.loads_trusted(current.content)
    return found


def _has_referral(unit: Unit, observation: dict[str, Any]) -> bool:
    for ref in observation.get("basedOn", []) or []:
        referral_id = reference_id(ref, "ServiceRequest")
        found = _stored(unit, "ServiceRequest", referral_id) if referral_id else None
        if found is not None and is_second_opinion(found):
            return True
    return False


def _kvnrs(patient: dict[str, Any] | None) -> list[str]:
    return [
        str(i["value"])
        for i in (patient or {}).get("identifier", []) or []
        if isinstance(i, dict) and i.get("system") == KVNR_SYSTEM and i.get("value")
    ]


def same_patients(unit: Unit, patient: str, batch: Sequence[dict[str, Any]]) -> list[str]:
    """The patient and every Patient sharing its KVNR."""
    resource = next(
        (r for r in batch if r.get("resourceType") == "Patient" and r.get("id") == patient),
        None,
    ) or _stored(unit, "Patient", patient)
    ids = [patient]
    for kvnr in _kvnrs(resource):
        found = unit.find(
            ["Patient"],
            [("identifier", f"{KVNR_SYSTEM}|{kvnr}"), ("_count", "50"), ("_total", "none")],
        )
        ids += [m.id for m in found.matches if m.id not in ids]
    return ids


def open_referrals(unit: Unit, patients: list[str]) -> list[str]:
    """Ids of the open second-opinion referrals of these patients."""
    found = unit.find(
        ["ServiceRequest"],
        [
            ("subject", ",".join(f"Patient/{p}" for p in patients)),
            ("intent", "order"),
            ("status", ",".join(OPEN_REFERRAL)),
            ("_count", "20"),
            ("_total", "none"),
        ],
    )
    return [
        m.id
        for m in found.matches
        if m.content is not None and is_second_opinion(jsonio.loads_trusted(m.content))
    ]


def attach_assessment(
    unit: Unit,
    resource: dict[str, Any],
    current: StoredVersion | None,
    batch: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The Observation with ``basedOn`` the patient's single open referral, where it fits."""
    if not is_assessment(resource) or _has_referral(unit, resource):
        return resource
    patient = patient_id(resource)
    if patient is None:
        return resource
    referrals = open_referrals(unit, same_patients(unit, patient, batch))
    if len(referrals) != 1:
        return resource
    based_on = [*(resource.get("basedOn") or []), {"reference": f"ServiceRequest/{referrals[0]}"}]
    return {**resource, "basedOn": based_on}

"""Synthetic but valid R4 payloads: ~2 KB Patients and 100-entry transaction Bundles.

Payloads are deterministic (seeded by an index) so that runs are comparable, and varied enough
that no cache or compression along the way sees the same bytes every time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson

#: One group of entries per patient: 1 Patient + 3 Condition + 4 Observation + 2 ServiceRequest.
GROUP_SIZE = 10

_GIVEN = ("Anna", "Jonas", "Lea", "Noah", "Mia", "Elias", "Emma", "Luca", "Sofia", "Ben")
_FAMILY = ("Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker")
_CITIES = ("Zurich", "Basel", "Bern", "Lausanne", "Geneva", "Lucerne", "St. Gallen", "Lugano")
_CARD = "urn:oid:2.16.756.5.30.1.123.100.1.1.1"
_SNOMED = "http://snomed.info/sct"
_LOINC = "http://loinc.org"
_DIAGNOSES = (
    ("279039007", "Low back pain"),
    ("202708005", "Lumbar disc prolapse"),
    ("18347007", "Spinal stenosis"),
    ("28294001", "Cervical radiculopathy"),
)
_VITALS = (
    ("8867-4", "Heart rate", 72, "/min"),
    ("8310-5", "Body temperature", 37, "Cel"),
    ("29463-7", "Body weight", 81, "kg"),
    ("8302-2", "Body height", 178, "cm"),
)


def _address(i: int, use: str) -> dict[str, Any]:
    return {
        "use": use,
        "type": "both",
        "line": [f"Bahnhofstrasse {i % 200 + 1}", f"Apartment {i % 40 + 1}"],
        "city": _CITIES[i % len(_CITIES)],
        "postalCode": f"{8000 + i % 900}",
        "country": "CH",
        "period": {"start": "2015-01-01"},
    }


def _contact(i: int) -> dict[str, Any]:
    return {
        "relationship": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}
                ],
                "text": "Next of kin",
            }
        ],
        "name": {"family": _FAMILY[(i + 3) % len(_FAMILY)], "given": [_GIVEN[(i + 5) % 10]]},
        "telecom": [{"system": "phone", "value": f"+41 79 {i % 1000:03d} 55 {i % 100:02d}"}],
        "address": _address(i + 7, "home"),
        "gender": "female" if i % 3 else "male",
    }


def _narrative(i: int, given: str, family: str) -> str:
    return (
        '<div xmlns="http://www.w3.org/1999/xhtml"><p>'
        f"{given} Maria {family}, MRN-{i:08d}, referred to the spine-care second-opinion "
        f"programme by the treating orthopaedic surgeon; imaging and prior reports attached. "
        f"Preferred contact by phone in the morning; German-speaking.</p></div>"
    )


def patient(i: int) -> dict[str, Any]:
    """A Patient of roughly 2 KB once stored, without an id (the server assigns one)."""
    given, family = _GIVEN[i % len(_GIVEN)], _FAMILY[i % len(_FAMILY)]
    return {
        "resourceType": "Patient",
        "text": {"status": "generated", "div": _narrative(i, given, family)},
        "identifier": [
            {"use": "official", "system": "urn:oid:2.16.756.5.32", "value": f"756.{i:010d}"},
            {"use": "usual", "system": "urn:ivz:bench:mrn", "value": f"MRN-{i:08d}"},
            {"use": "secondary", "system": _CARD, "value": f"80756{i:015d}"},
        ],
        "active": True,
        "name": [
            {"use": "official", "family": family, "given": [given, "Maria"], "prefix": ["Dr."]},
            {"use": "nickname", "given": [given[:3]]},
        ],
        "telecom": [
            {"system": "phone", "value": f"+41 44 {i % 1000:03d} {i % 100:02d} 00", "use": "home"},
            {"system": "email", "value": f"{given.lower()}.{i}@example.org", "use": "work"},
        ],
        "gender": "female" if i % 2 else "male",
        "birthDate": f"{1940 + i % 60}-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
        "address": [_address(i, "home"), _address(i + 1, "work")],
        "maritalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}
            ]
        },
        "contact": [_contact(i)],
        "communication": [
            {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "de-CH"}]}}
        ],
    }


def _ref(urn: str) -> dict[str, str]:
    return {"reference": urn}


def _condition(i: int, subject: str) -> dict[str, Any]:
    code, text = _DIAGNOSES[i % len(_DIAGNOSES)]
    status = "http://terminology.hl7.org/CodeSystem/condition-"
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": status + "clinical", "code": "active"}]},
        "verificationStatus": {"coding": [{"system": status + "ver-status", "code": "confirmed"}]},
        "code": {"coding": [{"system": _SNOMED, "code": code, "display": text}], "text": text},
        "subject": _ref(subject),
        "onsetDateTime": f"20{10 + i % 14}-0{i % 9 + 1}-15",
        "note": [{"text": f"Referred for second opinion, case {i}."}],
    }


def _observation(i: int, subject: str, based_on: str) -> dict[str, Any]:
    code, text, value, unit = _VITALS[i % len(_VITALS)]
    category = "http://terminology.hl7.org/CodeSystem/observation-category"
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": category, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": _LOINC, "code": code, "display": text}], "text": text},
        "subject": _ref(subject),
        "basedOn": [_ref(based_on)],
        "effectiveDateTime": f"2024-0{i % 9 + 1}-1{i % 10}T08:30:00+01:00",
        "valueQuantity": {
            "value": value + i % 7,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def _service_request(i: int, subject: str, reason: str) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "code": {"coding": [{"system": _SNOMED, "code": "71388002", "display": "Procedure"}]},
        "subject": _ref(subject),
        "reasonReference": [_ref(reason)],
        "authoredOn": "2024-05-02T10:00:00+02:00",
        "note": [{"text": f"Second opinion requested, order {i}."}],
    }


def _entry(resource: dict[str, Any], urn: str) -> dict[str, Any]:
    url = resource["resourceType"]
    return {"fullUrl": urn, "resource": resource, "request": {"method": "POST", "url": url}}


def _group(i: int) -> list[dict[str, Any]]:
    """One patient and nine resources that point at it (and at each other) by urn:uuid."""
    urns = [f"urn:uuid:{uuid.UUID(int=i * GROUP_SIZE + k + 1)}" for k in range(GROUP_SIZE)]
    pat = urns[0]
    resources = [patient(i)]
    resources += [_condition(i + k, pat) for k in range(3)]
    resources += [_service_request(i + k, pat, urns[1 + k]) for k in range(2)]
    resources += [_observation(i + k, pat, urns[4 + k % 2]) for k in range(4)]
    return [_entry(r, u) for r, u in zip(resources, urns, strict=True)]


def transaction(i: int, size: int = 100) -> dict[str, Any]:
    """A transaction Bundle of ``size`` POST entries (a multiple of GROUP_SIZE)."""
    first = i * (size // GROUP_SIZE)
    entries = [e for g in range(size // GROUP_SIZE) for e in _group(first + g)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def _rewrite(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, dict):
        return {k: _rewrite(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, mapping) for v in value]
    return value


def stored_form(bundle: dict[str, Any], when: datetime) -> list[tuple[str, str, bytes]]:
    """(type, id, bytes) as the server stores a bundle's resources: new ids, meta, local refs.

    This is what the raw-insert reference writes, so both sides move the same bytes.
    """
    entries = bundle["entry"]
    ids = {e["fullUrl"]: str(uuid.uuid4()) for e in entries}
    mapping = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{ids[e['fullUrl']]}" for e in entries
    }
    stamp = when.isoformat(timespec="milliseconds")
    out = []
    for e in entries:
        res = _rewrite(e["resource"], mapping)
        rid = ids[e["fullUrl"]]
        head = {"resourceType": res["resourceType"], "id": rid}
        head["meta"] = {"versionId": "1", "lastUpdated": stamp}
        out.append((res["resourceType"], rid, orjson.dumps({**head, **res})))
    return out

"""Each rule kind of each profile rejects a broken variant of the profile's example, and says
where with a FHIRPath expression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fhir_server.profiles.rules import Context, compile_profile
from tests.profiles.helpers import BASE, broken, coding, profile_issues

Change = Callable[[dict[str, Any]], Any]
OPS = "http://fhir.de/CodeSystem/bfarm/ops"
LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def _rejected(profile: str, change: Change, code: str, expression: str) -> None:
    issues = profile_issues(broken(profile, change))
    found = [(i.code, i.expression) for i in issues]
    assert (code, (expression,)) in found, found


def _set(key: str, value: Any) -> Change:
    return lambda doc: doc.__setitem__(key, value)


def _drop(key: str) -> Change:
    return lambda doc: doc.pop(key)


def _twice(key: str) -> Change:
    return lambda doc: doc[key].append(doc[key][0])


MISSING = [
    ("ivz-referral", "authoredOn", "ServiceRequest.authoredOn"),
    ("ivz-referral", "reasonCode", "ServiceRequest.reasonCode"),
    ("ivz-proposed-surgery", "code", "ServiceRequest.code"),
    ("ivz-appointment", "slot", "Appointment.slot"),
    ("ivz-appointment", "basedOn", "Appointment.basedOn"),
    ("ivz-pain-nrs", "effectiveDateTime", "Observation.effective"),
    ("ivz-odi", "subject", "Observation.subject"),
    ("ivz-depression-anxiety", "basedOn", "Observation.basedOn"),
    ("ivz-chronification-stage", "valueCodeableConcept", "Observation.value"),
    ("ivz-physical-exam", "category", "Observation.category"),
    ("ivz-verdict", "note", "Observation.note"),
    ("ivz-verdict", "performer", "Observation.performer"),
    ("ivz-treatment-plan", "addresses", "CarePlan.addresses"),
]


@pytest.mark.parametrize(("profile", "key", "where"), MISSING)
def test_missing_mandatory_element_is_required(profile: str, key: str, where: str) -> None:
    _rejected(profile, _drop(key), "required", where)


@pytest.mark.parametrize(
    ("profile", "key", "where"),
    [
        ("ivz-verdict", "basedOn", "Observation.basedOn"),
        ("ivz-verdict", "focus", "Observation.focus"),
        ("ivz-treatment-plan", "basedOn", "CarePlan.basedOn"),
    ],
)
def test_too_many_repetitions_break_the_maximum(profile: str, key: str, where: str) -> None:
    _rejected(profile, _twice(key), "structure", where)


def test_nested_element_cardinality_is_checked_per_present_parent() -> None:
    element = {"id": "CarePlan.activity.detail.code", "path": "CarePlan.activity.detail.code"}
    sd = {
        "url": "urn:test",
        "type": "CarePlan",
        "differential": {"element": [element]},
        "snapshot": {"element": [{**element, "min": 1, "max": "1"}]},
    }
    profile = compile_profile(sd, {}, {})
    plan = {
        "resourceType": "CarePlan",
        "activity": [
            {"detail": {"code": {"text": "Physiotherapie"}, "status": "scheduled"}},
            {"detail": {"status": "scheduled"}},
            {"reference": {"reference": "ServiceRequest/s"}},
        ],
    }
    issues = profile.check(plan, "CarePlan", Context(plan, lambda url: None))
    assert [(i.code, i.expression) for i in issues] == [
        ("required", ("CarePlan.activity[1].detail.code",))
    ]


@pytest.mark.parametrize(
    ("profile", "value", "where"),
    [
        ("ivz-referral", "plan", "ServiceRequest.intent"),
        ("ivz-proposed-surgery", "order", "ServiceRequest.intent"),
        ("ivz-treatment-plan", "proposal", "CarePlan.intent"),
    ],
)
def test_fixed_value_must_be_equal(profile: str, value: str, where: str) -> None:
    _rejected(profile, _set("intent", value), "value", where)


@pytest.mark.parametrize(
    ("profile", "change", "where"),
    [
        ("ivz-pain-nrs", _set("code", coding(LOINC, "38208-5")), "Observation.code"),
        ("ivz-odi", _set("code", coding(LOINC, "97908-8")), "Observation.code"),
        (
            "ivz-odi",
            _set(
                "valueQuantity", {"value": 46, "system": "http://unitsofmeasure.org", "code": "1"}
            ),
            "Observation.value.ofType(Quantity)",
        ),
        (
            "ivz-chronification-stage",
            _set("code", coding(f"{BASE}/CodeSystem/ivz-observation", "rmdq")),
            "Observation.code",
        ),
        ("ivz-verdict", _set("code", coding(LOINC, "11488-4")), "Observation.code"),
    ],
)
def test_pattern_must_be_contained(profile: str, change: Change, where: str) -> None:
    _rejected(profile, change, "value", where)


@pytest.mark.parametrize(
    ("profile", "change", "where"),
    [
        (
            "ivz-referral",
            _set("category", [coding("http://snomed.info/sct", "409063005")]),
            "ServiceRequest.category",
        ),
        (
            "ivz-referral",
            _set("reasonCode", [coding("http://terminology.hl7.org/CodeSystem/v2-0336", "P")]),
            "ServiceRequest.reasonCode",
        ),
        (
            "ivz-appointment",
            _set(
                "serviceType",
                [coding("http://terminology.hl7.org/CodeSystem/service-type", "164")],
            ),
            "Appointment.serviceType",
        ),
        (
            "ivz-depression-anxiety",
            _set("category", [coding(CATEGORY, "exam")]),
            "Observation.category",
        ),
        (
            "ivz-physical-exam",
            _set("category", [coding(CATEGORY, "survey")]),
            "Observation.category",
        ),
    ],
)
def test_slice_without_its_pattern_is_required(profile: str, change: Change, where: str) -> None:
    _rejected(profile, change, "required", where)


def test_slice_repeated_beyond_its_maximum_is_rejected() -> None:
    _rejected("ivz-referral", _twice("category"), "structure", "ServiceRequest.category")


def test_extension_slice_is_validated_against_the_extension_profile() -> None:
    def text_deadline(doc: dict[str, Any]) -> None:
        doc["extension"][0] = {"url": doc["extension"][0]["url"], "valueString": "morgen"}

    where = "Appointment.extension[0].value.ofType(string)"
    _rejected("ivz-appointment", text_deadline, "structure", where)


def test_extension_slice_maximum_is_checked() -> None:
    _rejected("ivz-appointment", _twice("extension"), "structure", "Appointment.extension")


@pytest.mark.parametrize(
    ("profile", "change", "where"),
    [
        (
            "ivz-proposed-surgery",
            _set("code", {"coding": [{"system": OPS, "version": "2026", "code": "5-820.00"}]}),
            "ServiceRequest.code",
        ),
        (
            "ivz-proposed-surgery",
            _set("code", {"coding": [{"system": OPS, "version": "2026", "code": "5-8360"}]}),
            "ServiceRequest.code",
        ),
        ("ivz-depression-anxiety", _set("code", coding(LOINC, "72514-3")), "Observation.code"),
        (
            "ivz-chronification-stage",
            _set("valueCodeableConcept", coding(f"{BASE}/CodeSystem/ivz-mpss-stage", "IV")),
            "Observation.value.ofType(CodeableConcept)",
        ),
        (
            "ivz-physical-exam",
            _set("code", coding(f"{BASE}/CodeSystem/ivz-observation", "verdict")),
            "Observation.code",
        ),
        (
            "ivz-verdict",
            _set("valueCodeableConcept", {"text": "Operation empfohlen"}),
            "Observation.value.ofType(CodeableConcept)",
        ),
        (
            "ivz-treatment-plan",
            lambda doc: doc["activity"][1]["detail"].__setitem__(
                "code", coding("http://snomed.info/sct", "387713003")
            ),
            "CarePlan.activity[1].detail.code",
        ),
    ],
)
def test_code_outside_the_required_value_set_is_invalid(
    profile: str, change: Change, where: str
) -> None:
    _rejected(profile, change, "code-invalid", where)


@pytest.mark.parametrize(
    ("profile", "change", "where"),
    [
        (
            "ivz-proposed-surgery",
            lambda doc: [c.pop("version") for c in doc["code"]["coding"]],
            "ServiceRequest.code",
        ),
        (
            "ivz-appointment",
            lambda doc: doc["participant"].pop(1),
            "Appointment",
        ),
        ("ivz-pain-nrs", _set("valueInteger", 11), "Observation.value"),
        (
            "ivz-odi",
            lambda doc: doc["valueQuantity"].__setitem__("value", 120),
            "Observation.value",
        ),
        ("ivz-depression-anxiety", _set("valueInteger", 28), "Observation.value"),
        ("ivz-chronification-stage", _set("status", "preliminary"), "Observation.status"),
        ("ivz-physical-exam", _set("status", "registered"), "Observation.status"),
        ("ivz-verdict", _set("status", "corrected"), "Observation.status"),
        (
            "ivz-treatment-plan",
            lambda doc: doc["activity"].append({"progress": [{"text": "offen"}]}),
            "CarePlan.activity",
        ),
    ],
)
def test_failed_invariant_is_reported_at_its_element(
    profile: str, change: Change, where: str
) -> None:
    _rejected(profile, change, "invariant", where)


def test_gad7_above_21_breaks_the_second_range_invariant() -> None:
    def gad7(doc: dict[str, Any]) -> None:
        doc["code"] = coding(LOINC, "70274-6")
        doc["valueInteger"] = 22

    issues = profile_issues(broken("ivz-depression-anxiety", gad7))
    assert [i.diagnostics.split(" ")[1] for i in issues] == ["ivz-da-2"]


@pytest.mark.parametrize(
    ("profile", "change", "where"),
    [
        (
            "ivz-referral",
            _set("supportingInfo", [{"reference": "Consent/c-1"}]),
            "ServiceRequest.supportingInfo[0]",
        ),
        ("ivz-referral", _set("subject", {"reference": "Group/g-1"}), "ServiceRequest.subject"),
        (
            "ivz-proposed-surgery",
            _set("subject", {"reference": "https://other.example/fhir/Group/g-1"}),
            "ServiceRequest.subject",
        ),
        (
            "ivz-appointment",
            _set("basedOn", [{"reference": "CarePlan/p"}]),
            "Appointment.basedOn[0]",
        ),
        ("ivz-pain-nrs", _set("basedOn", [{"reference": "CarePlan/p"}]), "Observation.basedOn[0]"),
        (
            "ivz-verdict",
            _set("performer", [{"reference": "Practitioner/dr-1"}]),
            "Observation.performer[0]",
        ),
        ("ivz-verdict", _set("focus", [{"reference": "Patient/p"}]), "Observation.focus[0]"),
        (
            "ivz-verdict",
            _set(
                "derivedFrom", [{"reference": "DocumentReference/d", "type": "DocumentReference"}]
            ),
            "Observation.derivedFrom[0]",
        ),
        (
            "ivz-treatment-plan",
            lambda doc: doc["activity"].append({"reference": {"reference": "MedicationRequest/m"}}),
            "CarePlan.activity[2].reference",
        ),
        (
            "ivz-treatment-plan",
            _set("supportingInfo", [{"type": "DocumentReference", "display": "Arztbrief"}]),
            "CarePlan.supportingInfo[0]",
        ),
    ],
)
def test_reference_to_the_wrong_type_is_invalid(profile: str, change: Change, where: str) -> None:
    _rejected(profile, change, "invalid", where)


def test_reference_to_a_contained_resource_of_the_wrong_type_is_invalid() -> None:
    def contained_group(doc: dict[str, Any]) -> None:
        doc["contained"] = [{"resourceType": "Group", "id": "g", "type": "person", "actual": True}]
        doc["subject"] = {"reference": "#g"}

    _rejected("ivz-referral", contained_group, "invalid", "ServiceRequest.subject")


def test_unresolved_urn_reference_is_let_through() -> None:
    doc = broken(
        "ivz-referral",
        _set("subject", {"reference": "urn:uuid:7d2c6f3e-1b1a-4f7a-9c55-0f0e5f1f2a01"}),
    )
    assert profile_issues(doc) == []


def test_profile_of_another_type_is_invalid() -> None:
    doc = broken("ivz-referral", _set("resourceType", "Observation"))
    [issue] = profile_issues(doc)
    assert (issue.code, issue.expression) == ("invalid", ("Observation.meta.profile",))

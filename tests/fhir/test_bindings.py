"""Required terminology bindings (fhir_server.fhir.bindings)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from fhir_server.fhir.bindings import (
    BindingViolation,
    check_required_bindings,
    enforced_valuesets,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "fhir-r4"
EXAMPLES = SHARED / "hl7.fhir.r4.examples-4.0.1.tgz"
DATA_FILE = ROOT / "fhir_server" / "data" / "required_bindings.json"

VS = "http://hl7.org/fhir/ValueSet/"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def where(resource: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """The violations as sortable (expression, code, value set) triples."""
    return sorted((v.expression, v.code, v.valueset) for v in check_required_bindings(resource))


def condition(clinical_status: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": clinical_status,
        "subject": {"reference": "Patient/1"},
    }


# --------------------------------------------------------------------------- resources


def test_valid_patient_has_no_violation() -> None:
    patient = {
        "resourceType": "Patient",
        "gender": "female",
        "identifier": [{"use": "official", "value": "1"}],
        "contact": [{"gender": "male"}],
    }
    assert check_required_bindings(patient) == []


def test_wrong_patient_gender_is_reported_with_expression_and_message() -> None:
    [violation] = check_required_bindings({"resourceType": "Patient", "gender": "M"})
    assert violation == BindingViolation(
        expression="Patient.gender",
        code="M",
        system=None,
        valueset=f"{VS}administrative-gender",
        message=(
            "Code 'M' is not in the required value set "
            "http://hl7.org/fhir/ValueSet/administrative-gender (Patient.gender)"
        ),
    )


def test_codes_are_case_sensitive() -> None:
    assert where({"resourceType": "Patient", "gender": "Female"}) == [
        ("Patient.gender", "Female", f"{VS}administrative-gender")
    ]


def test_wrong_observation_status_is_reported() -> None:
    observation = {"resourceType": "Observation", "status": "done", "code": {"text": "x"}}
    assert where(observation) == [("Observation.status", "done", f"{VS}observation-status")]


def test_wrong_service_request_intent_is_reported() -> None:
    request = {"resourceType": "ServiceRequest", "status": "active", "intent": "wish"}
    assert where(request) == [("ServiceRequest.intent", "wish", f"{VS}request-intent")]


def test_backbone_element_binding_is_checked() -> None:
    patient = {"resourceType": "Patient", "contact": [{"gender": "male"}, {"gender": "x"}]}
    assert where(patient) == [("Patient.contact[1].gender", "x", f"{VS}administrative-gender")]


def test_content_reference_element_is_checked() -> None:
    questionnaire = {
        "resourceType": "Questionnaire",
        "status": "active",
        "item": [{"linkId": "1", "type": "group", "item": [{"linkId": "2", "type": "txt"}]}],
    }
    assert where(questionnaire) == [("Questionnaire.item[0].item[0].type", "txt", f"{VS}item-type")]


def test_abstract_code_is_not_selectable() -> None:
    item = {"linkId": "1", "type": "question"}
    questionnaire = {"resourceType": "Questionnaire", "status": "active", "item": [item]}
    assert where(questionnaire) == [("Questionnaire.item[0].type", "question", f"{VS}item-type")]


def test_each_item_of_a_repeating_code_is_checked() -> None:
    repeat = {"frequency": 1, "period": 1, "periodUnit": "wk", "dayOfWeek": ["mon", "monday"]}
    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "dosageInstruction": [{"timing": {"repeat": repeat}}],
    }
    assert where(request) == [
        (
            "MedicationRequest.dosageInstruction[0].timing.repeat.dayOfWeek[1]",
            "monday",
            f"{VS}days-of-week",
        )
    ]


# --------------------------------------------------------------------------- datatypes


def test_bad_identifier_use_inside_patient_identifier_is_reported() -> None:
    patient = {"resourceType": "Patient", "identifier": [{"value": "1"}, {"use": "primary"}]}
    assert where(patient) == [("Patient.identifier[1].use", "primary", f"{VS}identifier-use")]


@pytest.mark.parametrize(
    ("element", "value", "expression", "valueset"),
    [
        ("name", [{"use": "nick"}], "Patient.name[0].use", "name-use"),
        ("telecom", [{"system": "mobile"}], "Patient.telecom[0].system", "contact-point-system"),
        ("address", [{"type": "home"}], "Patient.address[0].type", "address-type"),
        ("text", {"status": "draft", "div": "<div/>"}, "Patient.text.status", "narrative-status"),
    ],
)
def test_datatype_bindings_are_checked_wherever_the_datatype_is_used(
    element: str, value: Any, expression: str, valueset: str
) -> None:
    [violation] = check_required_bindings({"resourceType": "Patient", element: value})
    assert (violation.expression, violation.valueset) == (expression, f"{VS}{valueset}")


def test_datatype_inside_a_datatype_is_checked() -> None:
    assigner = {"identifier": {"use": "primary", "value": "x"}}
    patient = {"resourceType": "Patient", "identifier": [{"value": "1", "assigner": assigner}]}
    assert where(patient) == [
        ("Patient.identifier[0].assigner.identifier.use", "primary", f"{VS}identifier-use")
    ]


# --------------------------------------------------------------------------- choice types


def test_value_quantity_choice_comparator_is_checked() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueQuantity": {"value": 1, "comparator": "=<"},
    }
    assert where(observation) == [
        ("Observation.valueQuantity.comparator", "=<", f"{VS}quantity-comparator")
    ]


def test_component_value_choice_is_checked() -> None:
    components = [
        {"code": {"text": "a"}, "valueQuantity": {"value": 1, "comparator": "<"}},
        {"code": {"text": "b"}, "valueRange": {"low": {"value": 1, "comparator": "approx"}}},
    ]
    observation: dict[str, Any] = {"resourceType": "Observation", "status": "final"}
    observation["component"] = components
    assert where(observation) == [
        ("Observation.component[1].valueRange.low.comparator", "approx", f"{VS}quantity-comparator")
    ]


def test_extension_value_choice_is_checked() -> None:
    extension = {"url": "http://example.org/x", "valueIdentifier": {"use": "main"}}
    patient = {"resourceType": "Patient", "extension": [extension]}
    assert where(patient) == [
        ("Patient.extension[0].valueIdentifier.use", "main", f"{VS}identifier-use")
    ]


def test_extension_on_a_primitive_is_checked() -> None:
    extension = {"url": "http://example.org/x", "valueQuantity": {"comparator": "~"}}
    patient = {
        "resourceType": "Patient",
        "birthDate": "2000",
        "_birthDate": {"extension": [extension]},
    }
    assert where(patient) == [
        (
            "Patient._birthDate.extension[0].valueQuantity.comparator",
            "~",
            f"{VS}quantity-comparator",
        )
    ]


# --------------------------------------------------------------------------- CodeableConcept


def test_codeable_concept_with_one_coding_from_the_value_set_is_valid() -> None:
    status = {
        "coding": [
            {"system": "http://example.org/local", "code": "on"},
            {"system": CONDITION_CLINICAL, "code": "active"},
        ]
    }
    assert check_required_bindings(condition(status)) == []


def test_codeable_concept_without_a_coding_from_the_value_set_reports_each_coding() -> None:
    status = {
        "coding": [
            {"system": "http://example.org/local", "code": "active"},
            {"system": CONDITION_CLINICAL, "code": "cured"},
        ]
    }
    violations = check_required_bindings(condition(status))
    assert [(v.expression, v.system, v.code) for v in violations] == [
        ("Condition.clinicalStatus.coding[0]", "http://example.org/local", "active"),
        ("Condition.clinicalStatus.coding[1]", CONDITION_CLINICAL, "cured"),
    ]


def test_text_only_codeable_concept_breaks_a_required_binding() -> None:
    # R4 terminologies.html#required: a Coding from the value set SHALL be present; text is not
    # an acceptable substitute for the required code.
    [violation] = check_required_bindings(condition({"text": "active"}))
    assert (violation.expression, violation.code) == ("Condition.clinicalStatus", None)
    assert violation.message.startswith("No code is given")


def test_coding_without_system_is_not_from_the_value_set() -> None:
    [violation] = check_required_bindings(condition({"coding": [{"code": "active"}]}))
    assert (violation.system, violation.code) == (None, "active")
    assert "has no system" in violation.message


# --------------------------------------------------------------------------- nested resources


def test_bad_code_in_a_contained_resource_is_reported() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "contained": [{"resourceType": "Patient", "id": "p", "gender": "f"}],
        "subject": {"reference": "#p"},
    }
    assert where(observation) == [
        ("Observation.contained[0].gender", "f", f"{VS}administrative-gender")
    ]


def test_bad_code_in_a_bundle_entry_resource_is_reported() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "gender": "male"}},
            {"resource": {"resourceType": "Observation", "status": "done", "code": {}}},
        ],
    }
    assert where(bundle) == [("Bundle.entry[1].resource.status", "done", f"{VS}observation-status")]


def test_bundle_entries_are_checked_recursively() -> None:
    contained = {"resourceType": "Patient", "gender": "m"}
    inner = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Observation", "contained": [contained]}}],
    }
    bundle = {"resourceType": "Bundle", "type": "batchy", "entry": [{"resource": inner}]}
    assert where(bundle) == [
        (
            "Bundle.entry[0].resource.entry[0].resource.contained[0].gender",
            "m",
            f"{VS}administrative-gender",
        ),
        ("Bundle.type", "batchy", f"{VS}bundle-type"),
    ]


def test_parameters_resource_is_checked() -> None:
    parameter = {"name": "p", "resource": {"resourceType": "Patient", "gender": "?"}}
    parameters = {"resourceType": "Parameters", "parameter": [parameter]}
    assert [v.expression for v in check_required_bindings(parameters)] == [
        "Parameters.parameter[0].resource.gender"
    ]


# --------------------------------------------------------------------------- data and robustness


def test_value_sets_that_cannot_be_enumerated_are_not_checked() -> None:
    patient = {
        "resourceType": "Patient",
        "photo": [{"contentType": "image/not-a-registered-type"}],
        "extension": [{"url": "http://example.org/x", "valueMoney": {"currency": "XXY"}}],
    }
    assert check_required_bindings(patient) == []
    assert f"{VS}mimetypes" not in enforced_valuesets()
    assert f"{VS}currencies" not in enforced_valuesets()


def test_binding_urls_carry_no_version_pipe() -> None:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    urls = set(data["bindings"].values()) | set(data["valueSets"]) | set(data["notEnumerable"])
    assert not [url for url in urls if "|" in url]
    assert f"{VS}administrative-gender" in enforced_valuesets()


def test_data_file_is_up_to_date_with_the_build_tool(tmp_path: Path) -> None:
    if not SHARED.is_dir():
        pytest.skip("FHIR R4 spec data not available")
    spec = importlib.util.spec_from_file_location(
        "build_bindings", ROOT / "tools/build_bindings.py"
    )
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(["--out", str(tmp_path / "out.json")]) == 0
    assert (tmp_path / "out.json").read_bytes() == DATA_FILE.read_bytes()


def test_violation_is_frozen() -> None:
    [violation] = check_required_bindings({"resourceType": "Patient", "gender": "M"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        violation.code = "male"  # type: ignore[misc]


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Patient", "gender": 5},
        {"resourceType": "Patient", "gender": ["male", "M"]},
        {"resourceType": "Patient", "identifier": "official"},
        {"resourceType": "Patient", "identifier": [1, None, "x", ["use"]]},
        {"resourceType": "Patient", "contact": {"gender": {"x": 1}}},
        {"resourceType": "Patient", "contained": [{"resourceType": ["Patient"]}, "x", {}]},
        {"resourceType": "Condition", "clinicalStatus": "active"},
        {"resourceType": "Condition", "clinicalStatus": {"coding": "active"}},
        {"resourceType": "Condition", "clinicalStatus": {"coding": [1, {"code": "x"}]}},
        {"resourceType": "Condition", "clinicalStatus": {"coding": [{"system": 1, "code": 2}]}},
        {"resourceType": "Bundle", "entry": [{"resource": "Patient"}, {"resource": {}}]},
        {"resourceType": "NoSuchType", "gender": "M"},
        {"resourceType": {"Patient": 1}},
        {"gender": "M"},
    ],
)
def test_malformed_resources_are_skipped_without_error(resource: dict[str, Any]) -> None:
    assert check_required_bindings(resource) == []


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    item: dict[str, Any] = {"linkId": "leaf", "type": "strange"}
    for depth in range(3000):
        item = {"linkId": str(depth), "type": "group", "item": [item]}
    violations = check_required_bindings({"resourceType": "Questionnaire", "item": [item]})
    assert [v.code for v in violations] == ["strange"]
    assert violations[0].expression.count(".item[0]") == 3001


# --------------------------------------------------------------------------- official examples


def _official_examples() -> list[tuple[str, dict[str, Any]]]:
    examples = []
    with tarfile.open(EXAMPLES, "r:gz") as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is None or not name.endswith(".json") or name == "package.json":
                continue
            resource = json.load(handle)
            if isinstance(resource, dict) and "resourceType" in resource:
                examples.append((name, resource))
    return examples


def test_every_official_example_satisfies_its_required_bindings() -> None:
    # All 5,306 JSON examples of R4 4.0.1 pass: none needs to be listed as an exception. Their
    # 173,940 checked codes were cross-checked by an independent walk of the snapshots.
    if not EXAMPLES.is_file():
        pytest.skip("FHIR R4 examples not available")
    examples = _official_examples()
    assert len(examples) == 5306
    failures = {
        name: [v.message for v in violations]
        for name, resource in examples
        if (violations := check_required_bindings(resource))
    }
    assert failures == {}


def test_violations_come_in_walk_order() -> None:
    # Depth first, the last element first; the order the check had before valid resources
    # got a quicker pass of their own.
    patient = {
        "resourceType": "Patient",
        "identifier": [{"use": "bad-1"}, {"use": "official"}, {"use": "bad-2"}],
        "gender": "bad-3",
        "telecom": [{"system": "bad-4", "use": "bad-5"}],
        "contact": [{"gender": "bad-6", "telecom": [{"system": "bad-7"}]}],
        "extension": [{"url": "u", "valueQuantity": {"comparator": "bad-8"}}],
    }
    assert [(v.expression, v.code) for v in check_required_bindings(patient)] == [
        ("Patient.gender", "bad-3"),
        ("Patient.extension[0].valueQuantity.comparator", "bad-8"),
        ("Patient.contact[0].gender", "bad-6"),
        ("Patient.contact[0].telecom[0].system", "bad-7"),
        ("Patient.telecom[0].system", "bad-4"),
        ("Patient.telecom[0].use", "bad-5"),
        ("Patient.identifier[2].use", "bad-2"),
        ("Patient.identifier[0].use", "bad-1"),
    ]


def test_deep_valid_nesting_is_valid() -> None:
    item: dict[str, Any] = {"linkId": "leaf", "type": "string"}
    for depth in range(3000):
        item = {"linkId": str(depth), "type": "group", "item": [item]}
    assert check_required_bindings({"resourceType": "Questionnaire", "item": [item]}) == []


@pytest.mark.parametrize(
    "concept",
    [
        {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
        {"coding": [{"system": "http://other", "code": "x"}, "junk"]},
        {"coding": [{"system": CONDITION_CLINICAL, "code": 1}]},
        {"coding": "junk"},
        {"coding": []},
        {"text": "active"},
        {"coding": [{"system": "http://other", "code": "active"}]},
        "active",
    ],
)
def test_quick_pass_and_walk_agree_on_codeable_concepts(concept: Any) -> None:
    # The walk reports what the quick pass rejects: both must judge alike, or a violation
    # would be lost (quick pass says valid) or the walk would find none (it says invalid).
    from fhir_server.fhir import bindings

    resource = condition(concept)
    plan = bindings._tables().resources["Condition"]
    walked = bindings._walk(resource, plan, "Condition")
    assert bindings._valid(resource, plan) is (walked == [])
    assert check_required_bindings(resource) == walked

"""The FHIRPath compiler for search expressions (fhir_server.search.fhirpath)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.search.fhirpath import (
    FhirPathError,
    Reference,
    compile_path,
    root_type,
    split_reference,
    union_terms,
)


def typed(expression: str, resource: dict[str, Any]) -> list[tuple[str, Any]]:
    return compile_path(expression, resource["resourceType"]).evaluate_typed(resource)


def values(expression: str, resource: dict[str, Any]) -> list[Any]:
    return compile_path(expression, resource["resourceType"]).evaluate(resource)


PATIENT = {
    "resourceType": "Patient",
    "name": [{"family": "Chalmers", "given": ["Peter", "James"]}, {"given": ["Jim"]}],
    "telecom": [
        {"system": "phone", "value": "555-1"},
        {"system": "email", "value": "p@example.org"},
        {"system": "phone", "value": "555-2"},
    ],
    "extension": [
        {"url": "http://example.org/eye", "valueCode": "blue"},
        {"url": "http://example.org/other", "valueString": "x"},
    ],
}


def test_path_navigates_and_flattens_arrays() -> None:
    assert values("Patient.name.given", PATIENT) == ["Peter", "James", "Jim"]


def test_static_type_of_each_result_comes_from_the_structure() -> None:
    assert typed("Patient.name.family", PATIENT) == [("string", "Chalmers")]


def test_union_concatenates_both_sides() -> None:
    assert values("Patient.name.family | Patient.name.given", PATIENT) == [
        "Chalmers",
        "Peter",
        "James",
        "Jim",
    ]


def test_choice_path_matches_every_variant() -> None:
    quantity = {"resourceType": "Observation", "valueQuantity": {"value": 1}}
    text = {"resourceType": "Observation", "valueString": "blue"}
    assert typed("Observation.value", quantity) == [("Quantity", {"value": 1})]
    assert typed("Observation.value", text) == [("string", "blue")]


def test_as_on_a_choice_selects_one_variant() -> None:
    text = {"resourceType": "Observation", "valueString": "blue"}
    assert values("(Observation.value as Quantity)", text) == []
    assert values("Observation.value.as(string)", text) == ["blue"]
    assert len(compile_path("(Observation.value as Quantity)", "Observation").branches) == 1


def test_as_on_several_items_behaves_like_of_type() -> None:
    obs = {
        "resourceType": "Observation",
        "component": [
            {"valueQuantity": {"value": 1}},
            {"valueString": "a"},
            {"valueQuantity": {"value": 2}},
        ],
    }
    assert values("(Observation.component.value as Quantity)", obs) == [{"value": 1}, {"value": 2}]


def test_system_type_names_are_accepted_in_type_tests() -> None:
    obs = {"resourceType": "Observation", "valueDateTime": "2020-01-01"}
    assert values("Observation.value.as(DateTime)", obs) == ["2020-01-01"]


def test_where_filters_on_an_element_value() -> None:
    assert values("Patient.telecom.where(system='phone').value", PATIENT) == ["555-1", "555-2"]


@pytest.mark.parametrize(
    ("reference", "matches"),
    [
        ({"reference": "Patient/1"}, True),
        ({"reference": "http://other.org/fhir/Patient/1/_history/2"}, True),
        ({"reference": "Group/1"}, False),
        ({"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"}, False),
        ({"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0", "type": "Patient"}, True),
        ({"identifier": {"value": "1"}, "type": "Patient"}, True),
        ({"reference": "#p1"}, True),
        ({"reference": "#missing"}, False),
    ],
)
def test_where_resolve_is_checks_the_reference_target_type(
    reference: dict[str, Any], matches: bool
) -> None:
    obs = {
        "resourceType": "Observation",
        "contained": [{"resourceType": "Patient", "id": "p1"}],
        "subject": reference,
    }
    result = values("Observation.subject.where(resolve() is Patient)", obs)
    assert result == ([reference] if matches else [])


def test_leading_type_name_of_another_type_selects_nothing() -> None:
    multi = "Condition.code | Patient.name | Observation.code"
    assert [b.type for b in compile_path(multi, "Patient").branches] == ["HumanName"]


def test_resource_prefix_applies_to_every_type() -> None:
    patient = {"resourceType": "Patient", "meta": {"tag": [{"code": "t"}]}}
    assert values("Resource.meta.tag.code", patient) == ["t"]


def test_extension_function_selects_by_url() -> None:
    assert values("Patient.extension('http://example.org/eye').value", PATIENT) == ["blue"]
    where = "Patient.extension.where(url = 'http://example.org/eye').value.as(code)"
    assert values(where, PATIENT) == ["blue"]


def test_indexer_and_first_select_by_position() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Composition", "id": "c"}}, {"resource": {}}],
    }
    assert values("Bundle.entry[0].resource", bundle) == [bundle["entry"][0]["resource"]]
    assert values("Patient.name.given.first()", PATIENT) == ["Peter"]
    assert values("Patient.name.given.last()", PATIENT) == ["Jim"]
    assert values("Patient.name.given.tail()", PATIENT) == ["James", "Jim"]


def test_first_on_a_choice_follows_document_order() -> None:
    obs = {
        "resourceType": "Observation",
        "component": [{"valueString": "a"}, {"valueQuantity": {"value": 2}}],
    }
    assert typed("Observation.component.value.first()", obs) == [("string", "a")]
    assert typed("Observation.component.value[1]", obs) == [("Quantity", {"value": 2})]


def test_of_type_on_a_dynamic_resource_checks_resource_type() -> None:
    bundle = {
        "resourceType": "Bundle",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p", "gender": "male"}},
            {"resource": {"resourceType": "Observation", "id": "o"}},
        ],
    }
    assert typed("Bundle.entry.resource.ofType(Patient).gender", bundle) == [("code", "male")]


def test_boolean_logic_follows_three_valued_semantics() -> None:
    deceased = "Patient.deceased.exists() and Patient.deceased != false"
    assert values(deceased, {"resourceType": "Patient", "deceasedDateTime": "2020"}) == [True]
    assert values(deceased, {"resourceType": "Patient", "deceasedBoolean": True}) == [True]
    assert values(deceased, {"resourceType": "Patient", "deceasedBoolean": False}) == [False]
    assert values(deceased, {"resourceType": "Patient"}) == [False]


def test_operators_compare_membership_and_count() -> None:
    assert values("Patient.telecom.count() = 3", PATIENT) == [True]
    assert values("'Jim' in Patient.name.given", PATIENT) == [True]
    assert values("Patient.name.given contains 'Bob'", PATIENT) == [False]
    assert values("Patient.telecom.count() > 2 or {}", PATIENT) == [True]
    assert values("Patient.name.family ~ 'CHALMERS'", PATIENT) == [True]


def test_resource_variable_reaches_the_root_from_a_component() -> None:
    seq = {"resourceType": "MolecularSequence", "referenceSeq": {"chromosome": {"text": "1"}}}
    variant = {"start": 1}
    path = compile_path(
        "%resource.referenceSeq.chromosome", "MolecularSequence.variant", "MolecularSequence"
    )
    assert path.evaluate(variant, seq) == [{"text": "1"}]


def test_nulls_in_primitive_arrays_are_skipped() -> None:
    patient = {"resourceType": "Patient", "name": [{"given": [None, "Ann"]}]}
    assert values("Patient.name.given", patient) == ["Ann"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("Patient.nickname", "no element 'nickname'"),
        ("Patient.name.given.family", "primitive"),
        ("Patient.name.substring(1)", "substring() is not supported"),
        ("Patient.name +", "unexpected"),
        ("Patient.link.other.resolve().name", "resolve()"),
        ("Patient.name as Foo", "unknown type 'Foo'"),
        ("Patient.birthDate > @2020", "date/time literals"),
    ],
)
def test_unsupported_or_wrong_expressions_are_rejected_with_a_reason(
    expression: str, message: str
) -> None:
    with pytest.raises(FhirPathError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_path(expression, "Patient")


def test_compiled_paths_are_cached() -> None:
    assert compile_path("Patient.name", "Patient") is compile_path("Patient.name", "Patient")


def test_union_terms_and_root_type_split_multi_base_expressions() -> None:
    expression = "(Observation.value as Quantity) | Condition.onset.as(Age) | name"
    terms = union_terms(expression)
    assert terms == ["(Observation.value as Quantity)", "Condition.onset.as(Age)", "name"]
    assert [root_type(t) for t in terms] == ["Observation", "Condition", None]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("Patient/123", Reference("Patient", "123", None, None)),
        ("Patient/123/_history/4", Reference("Patient", "123", "4", None)),
        (
            "http://x.org/fhir/Patient/123",
            Reference("Patient", "123", None, "http://x.org/fhir/Patient/123"),
        ),
        ("urn:uuid:1c3e", Reference(None, None, None, "urn:uuid:1c3e")),
        ("NotAType/1", Reference(None, None, None, "NotAType/1")),
        ("#contained", None),
    ],
)
def test_split_reference_understands_every_reference_form(
    text: str, parsed: Reference | None
) -> None:
    assert split_reference(text) == parsed


# The usual where() criteria are compiled to direct tests; they must agree with the generic
# evaluation (parentheses keep an expression off the direct path) on odd data too.
ODD_TELECOMS: list[Any] = [
    {"system": "phone", "value": "1"},
    {"system": ["phone"], "value": "2"},
    {"system": ["phone", None], "value": "3"},
    {"system": ["phone", "phone"], "value": "4"},
    {"system": 1, "value": "5"},
    {"system": True, "value": "6"},
    {"value": "7"},
    {"system": "Phone", "value": "8"},
    {"system": {"value": "phone"}, "value": "9"},
    "phone",
    None,
]


def test_direct_equality_criteria_agree_with_the_generic_evaluation() -> None:
    patient = {"resourceType": "Patient", "telecom": ODD_TELECOMS}
    direct = values("Patient.telecom.where(system = 'phone')", patient)
    generic = values("Patient.telecom.where((system) = 'phone')", patient)
    assert direct == generic == ODD_TELECOMS[:3]


def test_direct_resolve_criteria_agree_with_the_generic_evaluation() -> None:
    subjects: list[Any] = [
        {"reference": "Patient/1"},
        {"reference": "Group/1"},
        {"reference": "#p1"},
        {"reference": "#g1"},
        {"reference": "#none"},
        {"reference": "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0", "type": "Patient"},
        {"type": "http://hl7.org/fhir/StructureDefinition/Patient"},
        {"reference": 7},
        "Patient/2",
        None,
    ]
    obs = {
        "resourceType": "Observation",
        "contained": [
            {"resourceType": "Patient", "id": "p1"},
            {"resourceType": "Group", "id": "g1"},
            "junk",
        ],
        "subject": subjects,
    }
    direct = values("Observation.subject.where(resolve() is Patient)", obs)
    generic = values("Observation.subject.where((resolve()) is Patient)", obs)
    assert direct == generic
    assert direct == [subjects[i] for i in (0, 2, 5, 6, 8)]


def test_where_on_a_plain_path_exposes_the_path_and_the_test() -> None:
    branch = compile_path("Patient.telecom.where(system = 'phone')", "Patient").branches[0]
    assert branch.filtered is not None
    path, keep = branch.filtered
    assert path == ("telecom",)
    telecoms = [{"system": "phone"}, {"system": "email"}, {"system": ["phone"]}]
    assert [keep(t, None) for t in telecoms] == [True, False, True]

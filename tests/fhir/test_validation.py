"""Write-time validation: official examples pass, each kind of fault is named."""

from __future__ import annotations

import json
import tarfile
from decimal import Decimal
from pathlib import Path

import pytest

from fhir_server.fhir.outcomes import FhirError
from fhir_server.service.validation import validate_resource

EXAMPLES = Path(__file__).resolve().parents[3] / "shared/fhir-r4/hl7.fhir.r4.examples-4.0.1.tgz"

#: Official examples that are genuinely invalid R4 (checked by hand; docs/validation.md).
KNOWN_INVALID = {
    "Bundle-v2-valuesets.json": "mojibake (U+00C2 U+00A0) inside a code",
    "CodeSystem-v2-0396.json": "mojibake whitespace in a valueString",
    "CodeSystem-v2-0550.json": "code with a trailing no-break space",
    "SearchParameter-questionnaireresponse-extensions-QuestionnaireResponse-item-subject.json": (
        "id longer than 64 characters"
    ),
    "ImplementationGuide-fhir.json": "ImplementationGuide.name missing",
    "ig-r4.json": "ImplementationGuide.name missing",
    "Questionnaire-qs1.json": "Questionnaire.item.linkId missing",
}


def _is_known_invalid(name: str) -> bool:
    return (
        name in KNOWN_INVALID
        or (name.startswith("SearchParameter-") and "-extensions-" in name and "-ValueSet-" in name)
        or (name.startswith("SearchParameter-codesystem-extensions-"))
    )


def test_official_r4_examples_are_accepted() -> None:
    if not EXAMPLES.is_file():
        pytest.skip(f"official examples not found at {EXAMPLES}")
    rejected = []
    checked = 0
    with tarfile.open(EXAMPLES) as tar:
        for member in tar:
            name = Path(member.name).name
            data = tar.extractfile(member) if member.name.endswith(".json") else None
            if data is None or member.size > 1_000_000:
                continue
            resource = json.loads(data.read(), parse_float=Decimal)
            if not isinstance(resource, dict) or "resourceType" not in resource:
                continue
            checked += 1
            try:
                validate_resource(resource)
            except FhirError as exc:
                if not _is_known_invalid(name):
                    rejected.append((name, exc.diagnostics[:160]))
    assert checked > 5000
    assert rejected == []


@pytest.mark.parametrize(
    ("resource", "status", "expression"),
    [
        ({"resourceType": "Patient", "gender": "M"}, 422, "Patient.gender"),
        ({"resourceType": "Patient", "colour": "blue"}, 400, "Patient.colour"),
        ({"resourceType": "Patient", "birthDate": "1968-13-01"}, 400, "Patient.birthDate"),
        ({"resourceType": "Observation", "status": "final"}, 422, "Observation.code"),
        (
            {"resourceType": "Patient", "identifier": [{"use": "private", "value": "1"}]},
            422,
            "Patient.identifier[0].use",
        ),
        (
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "x"},
                "valueString": "a",
                "valueBoolean": True,
            },
            422,
            "Observation",
        ),
    ],
)
def test_each_fault_has_status_and_expression(
    resource: dict[str, object], status: int, expression: str
) -> None:
    with pytest.raises(FhirError) as err:
        validate_resource(resource)
    assert err.value.status == status
    assert err.value.issues[0].expression[0].startswith(expression)


def test_no_break_space_in_a_string_is_accepted() -> None:
    validate_resource(
        {"resourceType": "Patient", "name": [{"family": "M\u00fcller\u00a0Lüdenscheidt"}]}
    )


def test_decimal_precision_survives_validation() -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "NRS"},
        "valueQuantity": {"value": Decimal("7.50")},
    }
    assert validate_resource(obs)["valueQuantity"]["value"] == Decimal("7.50")


@pytest.mark.parametrize(
    "div",
    [
        '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><p onclick="alert(1)">x</p></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><a href="javascript:alert(1)">x</a></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><p>unclosed</div>',
        "<div><p>no namespace</p></div>",
        '<div xmlns="http://www.w3.org/1999/xhtml"><iframe src="http://x"/></div>',
    ],
)
def test_unsafe_or_malformed_narrative_is_422(div: str) -> None:
    patient = {"resourceType": "Patient", "text": {"status": "generated", "div": div}}
    with pytest.raises(FhirError) as err:
        validate_resource(patient)
    assert err.value.status == 422
    assert err.value.issues[0].expression == ("Patient.text.div",)


def test_narrative_with_tables_links_and_images_is_accepted() -> None:
    div = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><table><tr><td><b>NRS</b></td>'
        '<td><a href="http://example.org">7</a></td></tr></table><img src="#x" alt=""/></div>'
    )
    validate_resource({"resourceType": "Patient", "text": {"status": "generated", "div": div}})


# ------------------------------------------------------ remembered elements (fhir/models.py)


def _obs(**extra: object) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        **extra,
    }


def test_remembered_elements_do_not_hide_faults() -> None:
    """The same Quantity, valid then inside a faulty element, then alone: each judged alike."""
    from fhir_server.fhir import models

    models.clear_cache()
    quantity = {"value": Decimal("72"), "unit": "/min"}
    assert models.validate_model(_obs(valueQuantity=quantity)) == []
    cold = models.validate_model(_obs(valueQuantity=quantity, valueString="x"))
    models.clear_cache()
    warm_first = models.validate_model(_obs(valueQuantity=quantity))
    assert warm_first == []
    assert models.validate_model(_obs(valueQuantity=quantity, valueString="x")) == cold != []
    range_ = {"low": quantity, "high": {"value": Decimal("1"), "comparator": "<"}}
    issues = models.validate_model(_obs(referenceRange=[{"low": quantity}, range_]))
    assert models.validate_model(_obs(referenceRange=[{"low": quantity}])) == []
    assert issues == models.validate_model(_obs(referenceRange=[{"low": quantity}, range_]))


def test_remembered_elements_tell_decimals_from_floats_and_strings() -> None:
    from fhir_server.fhir import models

    models.clear_cache()
    assert models.validate_model(_obs(valueQuantity={"value": Decimal("1.50")})) == []
    assert models.validate_model(_obs(valueQuantity={"value": 1.5})) == []
    keys = set(models._memo.young) | set(models._memo.old)
    quantities = [key for key in keys if key[0].__name__ == "Quantity"]
    assert len(quantities) == 2


def test_faulty_element_reports_the_same_issues_cold_and_warm() -> None:
    from fhir_server.fhir import models

    bad = _obs(subject={"reference": "Patient/1", "identifier": {"period": {"start": "x"}}})
    models.clear_cache()
    cold = models.validate_model(bad)
    warm = models.validate_model(bad)
    assert cold == warm != []


def test_models_validate_in_one_pass_and_keep_their_rules() -> None:
    """The one-pass validator is in use (a library upgrade that changes the schema shape
    falls back to ``model_validate``: slower, not wrong) and still rejects what fhir.resources
    rejects: nulls in lists of elements, two choice variants, a wrong resourceType."""
    from fhir.resources.R4B import get_fhir_model_class

    from fhir_server.fhir import models

    for name in ("Observation", "Patient", "Coding", "Reference", "CodeableConcept"):
        klass = get_fhir_model_class(name)
        assert models._node(klass).validate != klass.model_validate, name
    models.clear_cache()
    assert models.validate_model(_obs(category=[None])) != []
    assert models.validate_model(_obs(valueString="a", valueBoolean=True)) != []
    assert models.validate_model(_obs(code={"resourceType": "Patient", "text": "x"})) != []
    assert models.validate_model(_obs(code={"text": "x"}, category=[{"text": "y"}])) == []

"""Structure data from the R4 StructureDefinitions, and _summary/_elements subsetting."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fhir_server.fhir.structure import (
    SUBSETTED_TAG,
    apply_elements,
    apply_summary,
    mandatory_elements,
    primitive_types,
    resource_types,
    summary_elements,
    type_info,
)

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT.parent / "shared/fhir-r4/hl7.fhir.r4.core-4.0.1.tgz"
DATA = ROOT / "fhir_server/data/structure.json"
SUBSETTED = {"system": SUBSETTED_TAG["system"], "code": "SUBSETTED"}


def _patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "p1",
        "meta": {"versionId": "2", "tag": [{"system": "urn:x", "code": "keep"}]},
        "implicitRules": "http://example.org/rules",
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">P</div>'},
        "identifier": [{"system": "urn:mrn", "value": "1"}],
        "active": True,
        "name": [{"family": "Chalmers"}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "urn:t", "valueTime": "14:35:45"}]},
        "deceasedBoolean": False,
        "maritalStatus": {"text": "married"},
        "contact": [{"name": {"family": "Du Marché"}}],
        "communication": [{"language": {"text": "nl"}}],
    }


def _has_subsetted(resource: dict[str, Any]) -> bool:
    return any(
        tag.get("system") == SUBSETTED["system"] and tag.get("code") == "SUBSETTED"
        for tag in resource["meta"]["tag"]
    )


def _data() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(DATA.read_bytes())
    return result


# ------------------------------------------------------------------ structure data


def test_resource_types_are_the_146_concrete_r4_resources() -> None:
    types = resource_types()
    assert len(types) == 146
    assert {"Patient", "Bundle", "Parameters", "QuestionnaireResponse"} <= types
    assert not {"Resource", "DomainResource", "HumanName"} & types


def test_primitive_types_are_the_20_r4_primitives() -> None:
    assert primitive_types() >= {"boolean", "decimal", "dateTime", "positiveInt", "xhtml"}
    assert len(primitive_types()) == 20


def test_elements_follow_structure_definition_order() -> None:
    names = [e.name for e in type_info("Patient").elements]
    assert names[:9] == [
        "id",
        "meta",
        "implicitRules",
        "language",
        "text",
        "contained",
        "extension",
        "modifierExtension",
        "identifier",
    ]
    assert names.index("gender") < names.index("birthDate") < names.index("link")


def test_backbone_elements_are_addressed_by_path() -> None:
    contact = type_info("Patient").by_name["contact"]
    assert contact.type == "Patient.contact"
    assert contact.repeats and contact.kind == "complex"
    assert "relationship" in type_info("Patient.contact").by_name


def test_content_reference_points_to_the_referenced_backbone() -> None:
    item = type_info("Questionnaire.item").by_name["item"]
    assert item.type == "Questionnaire.item"
    assert type_info("Bundle.entry").by_name["link"].type == "Bundle.link"


def test_choice_elements_expand_to_typed_json_names() -> None:
    observation = type_info("Observation").by_name
    quantity, string = observation["valueQuantity"], observation["valueString"]
    assert (quantity.base, quantity.type, quantity.kind) == ("value", "Quantity", "complex")
    assert (string.type, string.kind) == ("string", "primitive")
    assert quantity.index == string.index
    assert "value" not in observation


def test_cardinality_summary_and_kinds_come_from_the_definition() -> None:
    patient = type_info("Patient").by_name
    assert patient["gender"].summary and not patient["gender"].repeats
    assert patient["name"].repeats and patient["name"].min == 0
    assert not patient["contact"].summary
    assert type_info("Narrative").by_name["status"].min == 1
    assert patient["contained"].kind == "resource"
    assert type_info("Narrative").by_name["div"].kind == "xhtml"


def test_json_kind_of_primitives_follows_their_base_type() -> None:
    timing = type_info("Timing.repeat").by_name
    assert timing["count"].json_kind == "integer"  # positiveInt derives from integer
    assert timing["duration"].json_kind == "decimal"
    assert type_info("Patient").by_name["active"].json_kind == "boolean"
    assert type_info("Patient").by_name["birthDate"].json_kind == "string"


def test_element_id_and_extension_url_are_xml_attributes() -> None:
    assert type_info("HumanName").by_name["id"].xml_attribute
    assert type_info("Extension").by_name["url"].xml_attribute
    assert not type_info("Patient").by_name["id"].xml_attribute  # Resource.id is an element


def test_every_referenced_type_is_defined() -> None:
    data = _data()
    known = set(data["types"]) | set(data["primitiveTypes"]) | {"Resource"}
    for name, rows in data["types"].items():
        for row in rows:
            codes = row[1] if isinstance(row[1], list) else [row[1]]
            assert set(codes) <= known, (name, row)


def test_structure_data_is_compact() -> None:
    assert DATA.stat().st_size < 1_000_000


def test_structure_data_is_what_the_build_script_generates(tmp_path: Path) -> None:
    if not CORE.is_file():
        pytest.skip(f"R4 core package not found at {CORE}")
    out = tmp_path / "structure.json"
    script = ROOT / "tools/build_structure_data.py"
    subprocess.run([sys.executable, str(script), str(CORE), "--out", str(out)], check=True)
    assert json.loads(out.read_bytes()) == _data()


# ------------------------------------------------------------------------ _summary


def test_summary_elements_are_summary_flagged_plus_id_meta_implicit_rules() -> None:
    names = summary_elements("Patient")
    assert {"id", "meta", "implicitRules", "identifier", "active", "name", "gender"} <= names
    assert {"birthDate", "_birthDate", "address", "managingOrganization", "link"} <= names
    assert not {"text", "contained", "contact", "maritalStatus", "photo", "extension"} & names


def test_summary_elements_expand_choices() -> None:
    assert {"deceasedBoolean", "deceasedDateTime"} <= summary_elements("Patient")
    assert "multipleBirthInteger" not in summary_elements("Patient")


def test_summary_elements_include_mandatory_elements() -> None:
    assert "participant" in summary_elements("Appointment")  # min 1, not isSummary
    assert "participant" in mandatory_elements("Appointment")


def test_summary_elements_of_unknown_type_raise() -> None:
    with pytest.raises(ValueError, match="Unknown resource type"):
        summary_elements("HumanName")


def test_summary_true_keeps_only_summary_elements() -> None:
    result = apply_summary(_patient(), "true")
    assert set(result) == {
        "resourceType",
        "id",
        "meta",
        "implicitRules",
        "identifier",
        "active",
        "name",
        "gender",
        "birthDate",
        "_birthDate",
        "deceasedBoolean",
    }


def test_summary_adds_subsetted_tag_and_keeps_existing_tags() -> None:
    result = apply_summary(_patient(), "true")
    assert {"system": "urn:x", "code": "keep"} in result["meta"]["tag"]
    assert _has_subsetted(result)
    assert result["meta"]["versionId"] == "2"


def test_summary_creates_meta_when_missing() -> None:
    patient = _patient()
    del patient["meta"]
    result = apply_summary(patient, "true")
    assert list(result)[:3] == ["resourceType", "id", "meta"]
    assert _has_subsetted(result)


def test_subsetted_tag_is_not_added_twice() -> None:
    once = apply_summary(_patient(), "true")
    twice = apply_summary(once, "true")
    assert sum(tag.get("code") == "SUBSETTED" for tag in twice["meta"]["tag"]) == 1


def test_summary_text_keeps_text_id_meta_and_mandatory_elements() -> None:
    appointment = {
        "resourceType": "Appointment",
        "id": "a1",
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">A</div>'},
        "status": "booked",
        "description": "Discussion",
        "participant": [{"status": "accepted"}],
    }
    result = apply_summary(appointment, "text")
    assert set(result) == {"resourceType", "id", "meta", "text", "status", "participant"}
    assert _has_subsetted(result)


def test_summary_data_removes_only_text() -> None:
    patient = _patient()
    result = apply_summary(patient, "data")
    assert set(result) == set(patient) - {"text"}
    assert _has_subsetted(result)


def test_summary_false_returns_everything_untagged() -> None:
    patient = _patient()
    assert apply_summary(patient, "false") == patient


def test_summary_does_not_mutate_its_input() -> None:
    patient = _patient()
    before = copy.deepcopy(patient)
    for mode in ("true", "text", "data", "false"):
        apply_summary(patient, mode)
    assert patient == before


def test_unsupported_summary_mode_raises() -> None:
    with pytest.raises(ValueError, match="_summary"):
        apply_summary(_patient(), "count")


# ----------------------------------------------------------------------- _elements


def test_elements_keeps_listed_plus_id_and_meta() -> None:
    result = apply_elements(_patient(), ["gender", "maritalStatus"])
    assert set(result) == {"resourceType", "id", "meta", "gender", "maritalStatus"}
    assert _has_subsetted(result)


def test_elements_keeps_mandatory_elements() -> None:
    appointment = {"resourceType": "Appointment", "status": "booked", "participant": [{}]}
    result = apply_elements(appointment, ["id"])
    assert set(result) == {"resourceType", "meta", "status", "participant"}


def test_elements_accepts_choice_base_names_and_type_prefix() -> None:
    for name in ("deceased", "deceased[x]", "deceasedBoolean", "Patient.deceased"):
        assert "deceasedBoolean" in apply_elements(_patient(), [name]), name


def test_elements_keeps_primitive_extension_companions() -> None:
    result = apply_elements(_patient(), ["birthDate"])
    assert result["_birthDate"] == _patient()["_birthDate"]


def test_elements_ignores_unknown_names() -> None:
    result = apply_elements(_patient(), ["nonsense", " gender "])
    assert set(result) == {"resourceType", "id", "meta", "gender"}


def test_elements_does_not_mutate_its_input() -> None:
    patient = _patient()
    before = copy.deepcopy(patient)
    apply_elements(patient, ["gender"])
    assert patient == before

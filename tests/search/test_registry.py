"""The search-parameter registry (fhir_server.search.registry) and its packaged data."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_server.search.registry import Registry, default_registry
from tests.search import SEARCH_PARAMETERS

ROOT = Path(__file__).resolve().parents[2]
DATA_FILE = ROOT / "fhir_server" / "data" / "search-parameters.json.gz"
GENERATOR = ROOT / "tools" / "build_search_data.py"
SP = "http://hl7.org/fhir/SearchParameter/"
#: The one standard definition R4 itself gets wrong: DeviceDefinition has no classification.
KNOWN_BAD = {SP + "DeviceDefinition-classification"}
COMMON = {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.standard()


def custom(**changes: Any) -> dict[str, Any]:
    """A custom SearchParameter on a Patient extension."""
    resource = {
        "resourceType": "SearchParameter",
        "url": "http://example.org/fhir/SearchParameter/patient-eye-colour",
        "name": "eye-colour",
        "status": "active",
        "code": "eye-colour",
        "base": ["Patient"],
        "type": "token",
        "expression": "Patient.extension('http://example.org/eye-colour').value.as(Coding)",
    }
    resource.update(changes)
    return resource


def test_every_standard_expression_compiles_but_the_known_bad_one(registry: Registry) -> None:
    assert {p.url for p in registry.problems} == KNOWN_BAD
    assert "no element 'classification'" in registry.problems[0].reason


def test_every_standard_definition_is_registered_for_each_of_its_bases(
    registry: Registry,
) -> None:
    definitions = json.loads(gzip.decompress(DATA_FILE.read_bytes()))["searchParameters"]
    assert len(definitions) == 1378
    for definition in definitions:
        if definition["url"] in KNOWN_BAD:
            continue
        for base in definition["base"]:
            if base in ("Resource", "DomainResource"):
                base = "Patient"
            param = registry.get(base, definition["code"])
            assert param is not None and param.url == definition["url"], (base, definition["code"])


def test_params_for_includes_the_common_resource_parameters(registry: Registry) -> None:
    assert set(registry.params_for("Patient")) >= COMMON
    assert set(registry.params_for("Bundle")) >= COMMON


def test_domain_resource_parameters_skip_bundle_binary_and_parameters(
    registry: Registry,
) -> None:
    assert "_text" in registry.params_for("Patient")
    assert "_text" not in registry.params_for("Bundle")


def test_parameters_without_expression_are_known_but_not_indexed(registry: Registry) -> None:
    for code in ("_text", "_content", "_query"):
        param = registry.get("Observation", code)
        assert param is not None and param.compiled is None
        assert param not in registry.indexed("Observation")


def test_multi_base_expression_is_split_per_type(registry: Registry) -> None:
    param = registry.get("Condition", "code")
    assert param is not None and param.compiled is not None
    assert param.expression == "Condition.code"
    assert "Condition" in param.base and "Observation" in param.base
    assert [b.type for b in param.compiled.branches] == ["CodeableConcept"]


def test_common_parameter_compiles_for_the_concrete_type(registry: Registry) -> None:
    param = registry.get("Patient", "_lastUpdated")
    assert param is not None and param.compiled is not None
    assert param.type == "date" and param.resource_type == "Patient"
    assert [b.type for b in param.compiled.branches] == ["instant"]


def test_reference_parameter_lists_its_targets(registry: Registry) -> None:
    param = registry.get("Observation", "subject")
    assert param is not None
    assert {"Patient", "Group", "Device", "Location"} <= set(param.targets)


def test_composite_components_resolve_to_their_parameters(registry: Registry) -> None:
    param = registry.get("Observation", "code-value-quantity")
    assert param is not None and param.type == "composite"
    assert [(c.param.code, c.param.type) for c in param.components] == [
        ("code", "token"),
        ("value-quantity", "quantity"),
    ]
    assert [c.expression for c in param.components] == ["code", "value.as(Quantity)"]


def test_composite_on_two_paths_compiles_components_for_each(registry: Registry) -> None:
    param = registry.get("Observation", "combo-code-value-quantity")
    assert param is not None and param.compiled is not None
    assert [b.type for b in param.compiled.branches] == ["Observation", "Observation.component"]
    assert all(len(c.compiled) == 2 for c in param.components)


def test_a_union_of_other_parameters_reads_their_rows_and_is_not_indexed(
    registry: Registry,
) -> None:
    unions = registry.unions("Observation")
    assert unions["combo-code"] == ("code", "component-code")
    assert unions["combo-value-quantity"] == ("component-value-quantity", "value-quantity")
    indexed = {p.code for p in registry.indexed("Observation")}
    assert "combo-code" not in indexed and {"code", "component-code"} <= indexed
    # a composite is a union when its components are the same expressions and types
    assert unions["combo-code-value-quantity"] == (
        "code-value-quantity",
        "component-code-value-quantity",
    )
    assert "subject" not in unions  # references keep their own rows (targets differ)
    assert registry.unions("Patient") == {}


def test_get_returns_none_for_an_unknown_code_or_type(registry: Registry) -> None:
    assert registry.get("Patient", "no-such-param") is None
    assert registry.get("NoSuchType", "_id") is None
    assert registry.params_for("NoSuchType") == {}


def test_add_registers_a_custom_parameter_for_its_bases() -> None:
    registry = Registry.standard()
    [param] = registry.add(custom())
    assert registry.get("Patient", "eye-colour") is param
    assert param.compiled is not None
    assert [b.type for b in param.compiled.branches] == ["Coding"]
    assert param in registry.indexed("Patient")


def test_add_on_resource_base_applies_to_every_type() -> None:
    registry = Registry.standard()
    added = registry.add(custom(base=["Resource"], code="lang", expression="Resource.language"))
    assert len(added) > 140
    assert registry.get("Observation", "lang") is not None


def test_add_replaces_a_parameter_with_the_same_code() -> None:
    registry = Registry.standard()
    registry.add(custom(code="gender", expression="Patient.gender | Patient.contact.gender"))
    param = registry.get("Patient", "gender")
    assert param is not None and param.expression == "Patient.gender | Patient.contact.gender"


def test_add_of_a_new_version_replaces_the_old_one() -> None:
    registry = Registry.standard()
    registry.add(custom())
    registry.add(custom(code="eye-color"))
    assert registry.get("Patient", "eye-colour") is None
    assert registry.get("Patient", "eye-color") is not None


def test_a_rejected_new_version_keeps_the_old_one() -> None:
    registry = Registry.standard()
    registry.add(custom())
    with pytest.raises(ValueError, match="selects nothing on Person"):
        registry.add(custom(code="eye-color", base=["Patient", "Person"]))
    assert registry.get("Patient", "eye-colour") is not None
    assert registry.definition(custom()["url"]) == custom()


def test_add_rejects_an_expression_that_does_not_compile() -> None:
    registry = Registry.standard()
    with pytest.raises(ValueError, match=r"does not compile for Patient.*no element 'eyes'"):
        registry.add(custom(expression="Patient.eyes"))
    assert registry.get("Patient", "eye-colour") is None


def test_add_rejects_an_expression_for_another_type() -> None:
    with pytest.raises(ValueError, match="no part for Patient"):
        Registry.standard().add(custom(expression="Observation.code | Condition.code"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"resourceType": "Patient"}, "not a SearchParameter"),
        ({"url": None}, "url is required"),
        ({"code": "bad code"}, "not a valid name"),
        ({"type": "fuzzy"}, "unknown type"),
        ({"base": ["Nope"]}, "unknown base"),
        ({"expression": None}, "expression is needed"),
        ({"type": "composite", "component": []}, "needs components"),
    ],
)
def test_add_rejects_malformed_search_parameters(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Registry.standard().add(custom(**changes))


def test_add_composite_resolves_components_by_url() -> None:
    registry = Registry.standard()
    registry.add(custom())
    composite = custom(
        url="http://example.org/fhir/SearchParameter/patient-eye-gender",
        code="eye-gender",
        type="composite",
        expression="Patient",
        component=[
            {
                "definition": custom()["url"],
                "expression": "extension('http://example.org/eye-colour').value",
            },
            {"definition": SP + "individual-gender", "expression": "gender"},
        ],
    )
    [param] = registry.add(composite)
    assert [c.param.code for c in param.components] == ["eye-colour", "gender"]


def test_copy_is_independent_of_the_original() -> None:
    original = Registry.standard()
    clone = original.copy()
    clone.add(custom())
    assert clone.get("Patient", "eye-colour") is not None
    assert original.get("Patient", "eye-colour") is None


def test_default_registry_is_loaded_once() -> None:
    assert default_registry() is default_registry()


def test_packaged_data_is_what_the_generator_builds() -> None:
    if not SEARCH_PARAMETERS.exists():
        pytest.skip(f"{SEARCH_PARAMETERS} not found")
    spec = importlib.util.spec_from_file_location("build_search_data", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    packaged = json.loads(gzip.decompress(DATA_FILE.read_bytes()))
    assert packaged == module.build(SEARCH_PARAMETERS)


def test_custom_parameters_never_take_part_in_unions() -> None:
    # x's rows are written; adding y must not make x read y's rows (older resources lack them)
    registry = Registry.standard()
    for code, expression in (
        ("x", "Observation.code | Observation.bodySite"),
        ("y", "Observation.bodySite"),
    ):
        registry.add(
            {
                "resourceType": "SearchParameter",
                "url": f"http://example.org/fhir/SearchParameter/{code}",
                "name": code,
                "status": "active",
                "description": code,
                "code": code,
                "base": ["Observation"],
                "type": "token",
                "expression": expression,
            }
        )
    assert "x" not in registry.unions("Observation")
    assert "x" in {p.code for p in registry.indexed("Observation")}

"""Every example in profiles/examples/ is a valid R4 resource that meets its profile."""

from __future__ import annotations

import json

import pytest

from fhir_server.profiles.registry import registry
from fhir_server.service.validation import validate_resource
from tests.profiles.helpers import EXAMPLE_OF, EXAMPLES, example, profile_issues


@pytest.mark.parametrize("profile", sorted(EXAMPLE_OF))
def test_example_meets_its_profile(profile: str) -> None:
    resource = example(profile)
    assert resource["meta"]["profile"] == [
        f"https://ivz-bridge.example/fhir/StructureDefinition/{profile}"
    ]
    assert profile_issues(resource) == []
    validate_resource(resource)


def test_every_program_profile_has_an_example() -> None:
    profiles = {
        url.rsplit("/", 1)[-1] for url, p in registry().profiles.items() if p.type != "Extension"
    }
    assert profiles == set(EXAMPLE_OF)
    assert {p.name for p in EXAMPLES.glob("*.json")} == set(EXAMPLE_OF.values())


def test_examples_refer_to_each_other_consistently() -> None:
    ids = {(d["resourceType"], d["id"]) for d in map(example, EXAMPLE_OF)}
    verdict = example("ivz-verdict")
    assert ("ServiceRequest", verdict["basedOn"][0]["reference"].split("/")[1]) in ids
    assert ("ServiceRequest", verdict["focus"][0]["reference"].split("/")[1]) in ids
    for ref in verdict["derivedFrom"]:
        assert ("Observation", ref["reference"].split("/")[1]) in ids
    plan = example("ivz-treatment-plan")
    assert plan["supportingInfo"][0]["reference"] == "Observation/ivz-example-verdict"
    text = json.dumps([example(p) for p in EXAMPLE_OF])
    assert text.count("Patient/ivz-example-patient") >= len(EXAMPLE_OF) - 1


def test_claimed_profile_with_version_suffix_is_validated() -> None:
    resource = example("ivz-pain-nrs")
    resource["meta"]["profile"] = [resource["meta"]["profile"][0] + "|1.0.0"]
    resource["valueInteger"] = 11
    assert [i.code for i in profile_issues(resource)] == ["invariant"]


def test_unknown_canonical_in_meta_profile_is_not_an_error() -> None:
    resource = example("ivz-pain-nrs")
    resource["meta"]["profile"] = ["http://example.org/StructureDefinition/other"]
    resource["valueInteger"] = 11
    validate_resource(resource)

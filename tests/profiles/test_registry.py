"""Loading profiles/: checked at start-up, installed idempotently."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fhir_server.profiles.install import install_conformance
from fhir_server.profiles.registry import (
    PROFILES_DIR,
    ProfileError,
    ProfileRegistry,
    load_resources,
)
from fhir_server.profiles.terminology import ValueSetIndex, index_value_set
from fhir_server.service.resources import ResourceService
from fhir_server.storage.database import Database
from tests.conftest import LiveServer


def _copy(tmp_path: Path) -> Path:
    for path in PROFILES_DIR.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_every_committed_resource_loads_and_compiles() -> None:
    resources = load_resources()
    assert len({r["url"] for r in resources}) == len(resources)
    assert len(ProfileRegistry(resources).profiles) == 12


def test_duplicate_canonical_url_stops_loading(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    shutil.copy(folder / "ValueSet-ivz-verdict.json", folder / "ValueSet-ivz-verdict-copy.json")
    with pytest.raises(ProfileError, match="share the canonical URL"):
        load_resources(folder)


def test_file_that_does_not_parse_stops_loading(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "ValueSet-broken.json").write_text('{"resourceType": "ValueSet",', "utf-8")
    with pytest.raises(ProfileError, match="does not parse"):
        load_resources(folder)


def test_binding_to_an_unknown_value_set_is_not_compiled_as_a_rule() -> None:
    resources = [r for r in load_resources() if r["url"] != _vs("ivz-mpss-stage")]
    registry = ProfileRegistry(resources)
    stage = registry.find(
        "https://ivz-bridge.example/fhir/StructureDefinition/ivz-chronification-stage"
    )
    assert stage is not None
    assert "Binding" not in {type(r).__name__ for r in stage.rules}


def test_invariant_that_does_not_compile_stops_loading(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    path = folder / "StructureDefinition-ivz-pain-nrs.json"
    text = path.read_text("utf-8").replace("$this >= 0 and $this <= 10", "$this >= (0")
    path.write_text(text, "utf-8")
    with pytest.raises(ProfileError, match="ivz-nrs-1"):
        ProfileRegistry(load_resources(folder))


def test_ops_membership_is_the_code_or_a_code_below_it() -> None:
    ops = _value_set("ivz-spine-surgery-ops")
    system = "http://fhir.de/CodeSystem/bfarm/ops"
    assert ops.contains(system, "5-836")
    assert ops.contains(system, "5-836.30")
    assert not ops.contains(system, "5-8360")
    assert not ops.contains(system, "8-918.02")
    assert not ops.contains("http://snomed.info/sct", "5-836")


def test_installing_again_makes_no_new_version(db: Database, server: LiveServer) -> None:
    service = ResourceService(db)
    install_conformance(service)
    install_conformance(service)
    assert service.read("StructureDefinition", "ivz-verdict").version_id == 1
    assert service.read("Measure", "ivz-program-report").version_id == 1


def _vs(rid: str) -> str:
    return f"https://ivz-bridge.example/fhir/ValueSet/{rid}"


def _value_set(rid: str) -> ValueSetIndex:
    doc = json.loads((PROFILES_DIR / f"ValueSet-{rid}.json").read_text("utf-8"))
    return index_value_set(doc, {})

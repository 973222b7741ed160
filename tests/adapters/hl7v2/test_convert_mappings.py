"""The mappings are data: a site adds a Z-segment or an event with files alone; the loader
refuses bad files with their place; the engine names no message type; the files agree with
the standard's datatypes (hl7apy) and the code maps with the spec (tools/build_v2_codes.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hl7apy import load_library

from adapters.hl7v2.convert import convert, default_mappings, load_mappings
from adapters.hl7v2.types import V2Error
from adapters.mapping.loader import MappingError, MappingSet
from tests.adapters.hl7v2 import resources, sample
from tests.adapters.hl7v2.test_convert_ref import REFERRAL
from tools import build_v2_codes

ROOT = Path(__file__).resolve().parents[3]
ZIV = b"ZIV|1|2024-ZM-77123^^^TK^FILL|Techniker Krankenkasse^^101575519\r"


def overlay(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return root


def test_a_site_z_segment_is_mapped_by_adding_files(tmp_path: Path) -> None:
    site = overlay(
        tmp_path,
        {
            "hl7v2/segments/ZIV.yaml": (
                "segment: ZIV\n"
                "contributes_to: {to: RF1}\n"
                "description: The insurer's case number of the second-opinion case.\n"
                "rules:\n"
                '  - {target: "identifier[]", field: 2, datatype: CX}\n'
            ),
            "hl7v2/messages/REF_I12.yaml": "extends: REF_I12\nadd: [ZIV]\n",
        },
    )
    conversion = convert(REFERRAL + ZIV, mappings=load_mappings(site))
    referral = next(
        s for s in resources(conversion.bundle, "ServiceRequest") if s["intent"] == "order"
    )
    case = referral["identifier"][-1]
    assert case["value"] == "2024-ZM-77123"
    assert case["assigner"] == {"display": "TK"}
    assert not any("ZIV" in w for w in conversion.warnings)


def test_without_its_mapping_a_z_segment_is_kept_and_reported() -> None:
    conversion = convert(REFERRAL + ZIV)
    assert "segment ZIV (1x) is not mapped" in conversion.warnings
    referral = conversion.bundle["entry"][1]["resource"]
    assert [i["value"] for i in referral["identifier"]] == ["ZM-2024-0042"]


def test_a_new_event_is_one_line_of_events_csv(tmp_path: Path) -> None:
    raw = sample("ORU/v2fhirig__ORU_R01.hl7").replace(b"ORU^R01^ORU_R01", b"ORU^R30^ORU_R30")
    with pytest.raises(V2Error):
        convert(raw)
    events = (ROOT / "mappings/hl7v2/events.csv").read_text("utf-8")
    site = overlay(
        tmp_path, {"hl7v2/events.csv": events + "ORU,R30,ORU_R30,ORU_R01,Point-of-care result\n"}
    )
    bundle = convert(raw, mappings=load_mappings(site)).bundle
    assert len(resources(bundle, "Observation")) == 3


def _zzz(rules: str) -> dict[str, str]:
    """A test Z-segment mapping with the given rules (flow YAML)."""
    return {
        "hl7v2/segments/ZZZ.yaml": f"segment: ZZZ\ncontributes_to: {{to: PID}}\nrules: {rules}\n"
    }


@pytest.mark.parametrize(
    ("files", "complaint"),
    [
        (
            _zzz("[{target: x, field: 1, transform: shout}]"),
            "ZZZ.yaml: rules[0] (x): unknown transform 'shout'",
        ),
        (
            _zzz("[{target: x, field: 1, when: {valued: {field: 1}, empty: {field: 2}}}]"),
            "a condition names exactly one predicate",
        ),
        (
            {"hl7v2/messages/ADT_A01.yaml": "mappings: [MSH, PIDD]\n"},
            "ADT_A01.yaml: mappings: unknown segment mapping 'PIDD'",
        ),
        (
            {"hl7v2/segments/ZZZ.yaml": "segment: ZZZ\nresource: Basic\nrules: []\n"},
            "a resource needs 'id' alternatives",
        ),
        (_zzz("[{target: x, field: 1, map: nope}]"), "unknown code map 'nope'"),
        ({"hl7v2/segments/ZZZ.yaml": "segment: [ZZZ\n"}, "ZZZ.yaml: cannot read"),
        (_zzz("[{target: 'a..b', field: 1}]"), "bad step"),
    ],
)
def test_the_loader_refuses_a_bad_file_and_says_where(
    tmp_path: Path, files: dict[str, str], complaint: str
) -> None:
    with pytest.raises(MappingError) as caught:
        load_mappings(overlay(tmp_path, files))
    assert any(complaint in problem for problem in caught.value.problems), caught.value.problems


def test_the_engine_names_no_message_type_segment_or_resource() -> None:
    mappings = default_mappings()
    names = {e.message_type for e in mappings.events.values()}
    names |= {m.segment for m in mappings.segments.values()} - {"MSH"}
    names |= {m.resource for m in mappings.segments.values() if m.resource}
    names |= {d.produces for d in mappings.datatypes.values() if d.resource}
    for path in (ROOT / "adapters/mapping").glob("*.py"):
        literals = {
            node.value
            for node in ast.walk(ast.parse(path.read_text("utf-8")))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        }
        assert not literals & names, (path.name, literals & names)


#: Our datatype mappings and the standard datatypes each may read, across v2 versions.
FAMILIES = {
    "CWE": {"CWE", "CE", "CNE", "CF", "IS", "ID", "ST"},
    "CX": {"CX", "ST"},
    "EI": {"EI", "EIP", "ST", "CM"},
    "HD": {"HD"},
    "XPN": {"XPN", "PN"},
    "XAD": {"XAD", "AD"},
    "XTN": {"XTN", "TN"},
    "XCN": {"XCN", "CN", "ST"},
    "PL": {"PL", "CM"},
}


def _standard_types(segment: str, field: int) -> set[str]:
    found = set()
    for version in ("2.3", "2.5", "2.8"):
        definition = load_library(version).SEGMENTS.get(segment)
        if definition is None or field > len(definition[1]):
            continue
        found.add(definition[1][field - 1][1][2])
    return found


#: Transforms and the standard datatypes they read.
TRANSFORMS = {
    "date": {"TS", "DTM", "DT"},
    "date_time": {"TS", "DTM", "DT"},
    "instant": {"TS", "DTM"},
    "integer": {"NM", "SI"},
    "boolean": {"ID"},
}


def _checks(mappings: MappingSet) -> list[tuple[str, int, set[str]]]:
    """(segment, field, datatypes it may have) for every whole field a mapping reads."""
    found = []
    for mapping in mappings.segments.values():
        for rule in mapping.rules:
            if rule.plain_field is None:
                continue
            inner = [r for r in rule.build or [] if not r.has_source] if rule.build else [rule]
            for use in inner:
                name = use.datatype or use.resource
                if name is not None:
                    family = FAMILIES[mappings.datatypes[name].datatype]
                elif use.transform in TRANSFORMS:
                    family = TRANSFORMS[use.transform]
                else:
                    continue
                found.append((mapping.segment, rule.plain_field, family))
    return found


def test_mapped_fields_have_the_datatypes_the_standard_gives_them() -> None:
    checks = _checks(default_mappings())
    for segment, field, family in checks:
        standard = _standard_types(segment, field)
        if standard == {"varies"}:  # OBX-5: typed by OBX-2
            continue
        assert standard & family, (segment, field, standard, family)
    assert len(checks) > 70


@pytest.mark.skipif(
    not build_v2_codes.DEFAULT_SHARED.is_dir(), reason="the shared spec files are absent"
)
def test_the_code_maps_are_current_with_the_spec() -> None:
    assert build_v2_codes.main(["--check"]) == 0


def test_every_code_map_is_used_by_a_mapping() -> None:
    mappings = default_mappings()
    texts = "".join(p.read_text("utf-8") for p in (ROOT / "mappings/hl7v2").rglob("*.yaml"))
    assert [m for m in mappings.codes.maps if m not in texts] == []


def test_the_default_mappings_load_without_complaint() -> None:
    mappings = default_mappings()
    assert {e.mapping for e in mappings.events.values()} == set(mappings.messages)

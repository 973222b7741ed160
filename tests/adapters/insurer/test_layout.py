"""Layout files are data, checked when loaded; problems name the file and the element."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.insurer import layout
from adapters.insurer.layout import LayoutError, Target

TK_HEADER = (
    "Fallnummer;Eingangsdatum;KVNR;IK_Kasse;Kasse;Nachname;Vorname;Geburtsdatum;Geschlecht;PLZ;"
    "Ort;Telefon;EMail;Diagnosen_ICD10GM;OPS_Code;OPS_Text;Operateur_LANR;Operateur_Name;"
    "Klinik_IK;Klinik_Name;OP_Termin;Einwilligung;Bemerkung"
)

MINIMAL = """\
layout: {name}
title: Test
columns:
  id: referral.identifier
  at: referral.authoredOn
  kvnr: Patient.identifier:KVNR
  family: Patient.name.family
  given: Patient.name.given
  born: Patient.birthDate
  sex: Patient.gender
  icd: Condition.code:ICD-10-GM
  ops: proposal.code:OPS
constants:
  Coverage.payor:IK: "101575519"
  Coverage.payor.display: Techniker Krankenkasse
values:
  Patient.gender: {{m: M, f: W}}
"""


def _with_column(line: str) -> str:
    return MINIMAL.format(name="test").replace("columns:\n", "columns:\n" + line)


def _write(tmp_path: Path, text: str, name: str = "test") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_tk_layout_has_exactly_the_tk_headers_in_order() -> None:
    spec = layout.load("tk")
    assert ";".join(spec.columns) == TK_HEADER


def test_aok_layout_maps_the_same_targets_from_other_columns() -> None:
    tk, aok = layout.load("tk"), layout.load("aok")
    assert set(aok.columns.values()) == set(tk.columns.values()) == set(Target)
    assert not set(aok.columns) & set(tk.columns)


def test_a_minimal_layout_with_constants_loads(tmp_path: Path) -> None:
    spec = layout.load("test", tmp_path if _write(tmp_path, MINIMAL.format(name="test")) else None)
    assert spec.constants[Target.INSURER_IK] == "101575519"


def test_unknown_layout_names_the_known_ones() -> None:
    with pytest.raises(LayoutError, match=r"no layout 'nope' .*known: aok, tk"):
        layout.load("nope")


def test_unknown_target_is_rejected_with_its_location(tmp_path: Path) -> None:
    _write(tmp_path, _with_column("  extra: Patient.shoeSize\n"))
    with pytest.raises(LayoutError, match=r"test.yaml: columns\.extra: Input should be"):
        layout.load("test", tmp_path)


def test_missing_required_target_is_rejected(tmp_path: Path) -> None:
    text = MINIMAL.format(name="test").replace("  ops: proposal.code:OPS\n", "")
    _write(tmp_path, text)
    with pytest.raises(LayoutError, match=r"required targets \['proposal.code:OPS'\]"):
        layout.load("test", tmp_path)


def test_duplicate_yaml_key_is_an_error_not_an_overwrite(tmp_path: Path) -> None:
    _write(tmp_path, MINIMAL.format(name="test").replace("  at:", "  id:"))
    with pytest.raises(LayoutError, match="duplicate key 'id'"):
        layout.load("test", tmp_path)


def test_two_columns_for_one_target_are_rejected(tmp_path: Path) -> None:
    _write(tmp_path, _with_column("  id2: referral.identifier\n"))
    with pytest.raises(LayoutError, match=r"'id2' and 'id' both map to referral\.identifier"):
        layout.load("test", tmp_path)


def test_value_map_into_unknown_code_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path, MINIMAL.format(name="test").replace("f: W", "f: F"))
    with pytest.raises(LayoutError, match=r"Patient.gender maps to \['F'\]"):
        layout.load("test", tmp_path)


def test_constant_with_bad_check_digit_is_rejected_at_load(tmp_path: Path) -> None:
    _write(tmp_path, MINIMAL.format(name="test").replace('"101575519"', '"101575518"'))
    with pytest.raises(LayoutError, match=r"constants.Coverage.payor:IK: '101575518'.*check digit"):
        layout.load("test", tmp_path)


def test_layout_name_must_match_its_file(tmp_path: Path) -> None:
    _write(tmp_path, MINIMAL.format(name="other"))
    with pytest.raises(LayoutError, match="does not match the file name"):
        layout.load("test", tmp_path)


def test_yes_and_no_stay_text_in_value_maps() -> None:
    consent = layout.load("aok").values[Target.CONSENT]
    assert consent["yes"] == "permit" and consent["no"] == "deny"

"""Golden files: the whole bundle of a few mappings, byte for byte.

A deliberate mapping change shows up here as a diff to review; regenerate the files with
``IVZ_UPDATE_GOLDEN=1 pytest tests/adapters/hl7v2/test_convert_golden.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.hl7v2.convert import convert
from fhir_server.fhir import jsonio
from tests.adapters.hl7v2 import SAMPLES, sample
from tests.adapters.hl7v2.test_convert_ref import REFERRAL

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("IVZ_UPDATE_GOLDEN") == "1"

CASES = {
    "adt_a01_v2fhirig": "ADT/v2fhirig__ADT_A01.hl7",
    "oru_r01_v2fhirig": "ORU/v2fhirig__ORU_R01.hl7",
    "siu_s12_msfc": "SIU/msfc__SIU-S12-01.hl7",
    "ref_i12_second_opinion": None,  # tests.adapters.hl7v2.test_convert_ref.REFERRAL
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_bundle_matches_its_golden_file(name: str) -> None:
    source = CASES[name]
    if source is not None and not SAMPLES.is_dir():
        pytest.skip("the shared sample corpus is absent")
    conversion = convert(sample(source) if source else REFERRAL)
    actual = (
        jsonio.dumps({"warnings": conversion.warnings, "bundle": conversion.bundle}, pretty=True)
        + b"\n"
    )
    path = GOLDEN / f"{name}.json"
    if UPDATE:
        path.write_bytes(actual)
    assert path.exists(), f"no golden file {path.name}: run with IVZ_UPDATE_GOLDEN=1"
    assert actual == path.read_bytes(), f"{path.name} differs: review, then regenerate"

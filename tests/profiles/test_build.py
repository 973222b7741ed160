"""tools/build_profiles.py reproduces the committed profiles/ exactly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.profiles.helpers import ROOT


def test_generated_files_equal_the_committed_ones(shared: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "build_profiles", ROOT / "tools" / "build_profiles.py"
    )
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    files = tool.build(shared / "fhir-r4" / "hl7.fhir.r4.core-4.0.1.tgz")
    committed = {
        p.name: p.read_text("utf-8")
        for p in (ROOT / "profiles").iterdir()
        if p.suffix in (".json", ".html")
    }
    assert files == committed

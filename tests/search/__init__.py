"""Tests of ``fhir_server.search``, and the official examples they share."""

from __future__ import annotations

import json
import tarfile
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "fhir-r4"
EXAMPLES = SHARED / "hl7.fhir.r4.examples-4.0.1.tgz"
SEARCH_PARAMETERS = SHARED / "search-parameters.json"


@cache
def examples() -> dict[str, dict[str, Any]]:
    """Every official R4 example resource by file name, decimals as Decimal (as the API has)."""
    if not EXAMPLES.exists():
        pytest.skip(f"official examples not found at {EXAMPLES}")
    found: dict[str, dict[str, Any]] = {}
    with tarfile.open(EXAMPLES) as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.name.endswith(".json") else None
            if handle is None:
                continue
            resource = json.load(handle, parse_float=Decimal)
            if isinstance(resource, dict) and "resourceType" in resource:
                found[member.name.rsplit("/", 1)[-1]] = resource
    return found


def example(name: str) -> dict[str, Any]:
    """One official example, e.g. ``Patient-example.json``."""
    return examples()[name]

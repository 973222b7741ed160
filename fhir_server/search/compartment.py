"""The Patient compartment (CompartmentDefinition, R4): which parameters link a type to a
Patient. Used by compartment search, ``$everything``, bulk export and the access rules."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources as package_files


@cache
def patient_compartment() -> dict[str, list[str]]:
    raw = package_files.files("fhir_server.data").joinpath("compartment-patient.json").read_text()
    data: dict[str, list[str]] = json.loads(raw)["resource"]
    return data

"""The single sample referral for ``ivz serve --demo`` (IVZ_DEMO_DATA), loaded once."""

from __future__ import annotations

from importlib import resources

from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError
from fhir_server.service.resources import ResourceService
from fhir_server.service.transaction import process


def load_demo_data(service: ResourceService) -> bool:
    """Load the demo bundle unless it is already there; True when it was loaded."""
    try:
        service.read("ServiceRequest", "demo-referral-1")
        return False
    except FhirError:
        pass
    raw = resources.files("fhir_server.data").joinpath("demo/demo-bundle.json").read_bytes()
    process(service, jsonio.loads(raw), "")
    return True

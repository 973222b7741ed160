"""Helpers for the HL7 v2 tests: the sample corpus, message building, bundle lookups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fhir_server.fhir import jsonio
from fhir_server.service import transaction
from fhir_server.service.resources import ResourceService
from fhir_server.storage import migrate
from fhir_server.storage.database import Database

#: The shared corpus of real messages (read by tests only, never by the product).
SAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "samples" / "hl7v2"


def sample(relative: str) -> bytes:
    return (SAMPLES / relative).read_bytes()


def message(*segments: str) -> bytes:
    """A message from segment strings, CR-separated as on the wire."""
    return "\r".join(segments).encode("utf-8") + b"\r"


def segment(name: str, fields: dict[int, str]) -> str:
    """A segment from {field number: value}; saves counting pipes in tests."""
    size = max(fields, default=0)
    return "|".join([name, *(fields.get(n, "") for n in range(1, size + 1))])


def resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    ]


def one(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    found = resources(bundle, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, got {len(found)}"
    return found[0]


def reference(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def new_service(directory: Path) -> ResourceService:
    """The server's service layer on a fresh SQLite database."""
    db = Database(f"sqlite:///{directory / 'fhir.db'}")
    migrate.upgrade(db)
    return ResourceService(db)


def commit(service: ResourceService, bundle: dict[str, Any]) -> None:
    """Run a converted bundle as a transaction through the service layer, as the worker will."""
    transaction.process(service, bundle, "")


def stored(service: ResourceService, ref: str) -> tuple[int, dict[str, Any]]:
    """(version, resource) as the server holds it, for "Type/id"."""
    resource_type, _, resource_id = ref.partition("/")
    found = service.read(resource_type, resource_id)
    assert found.content is not None
    return found.version_id, jsonio.loads_trusted(found.content)

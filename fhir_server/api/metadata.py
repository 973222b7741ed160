"""The CapabilityStatement, built once from the registries the server loaded."""

from __future__ import annotations

from typing import Any

from fhir_server import __version__
from fhir_server.fhir.schema import resource_types
from fhir_server.service.clock import instant, now

_TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
)


def capability_statement(base_url: str) -> dict[str, Any]:
    resources = [
        {
            "type": rtype,
            "interaction": [{"code": code} for code in _TYPE_INTERACTIONS],
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": False,
            "conditionalRead": "modified-since",
            "conditionalUpdate": False,
            "conditionalDelete": "not-supported",
        }
        for rtype in sorted(resource_types())
    ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(now()),
        "publisher": "ivz-bridge",
        "kind": "instance",
        "software": {"name": "ivz-bridge", "version": __version__},
        "implementation": {"description": "ivz-bridge FHIR R4 server", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml", "json", "xml"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "resource": resources,
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                ],
            }
        ],
    }

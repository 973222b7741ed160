"""The CapabilityStatement, built once from the registries the server loaded."""

from __future__ import annotations

from typing import Any

from fhir_server import __version__
from fhir_server.fhir.schema import resource_types
from fhir_server.search.registry import Registry
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
    "search-type",
)


_PROGRAM = "https://ivz-bridge.example/fhir/OperationDefinition/"
_BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
#: Operations per resource type ("*": every type) and at system level, with their definitions.
_TYPE_OPERATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "*": (("validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate"),),
    "ServiceRequest": (
        ("verdict", _PROGRAM + "ivz-verdict"),
        ("amend-verdict", _PROGRAM + "ivz-amend-verdict"),
        ("pathway", _PROGRAM + "ivz-pathway"),
        ("book", _PROGRAM + "ivz-book"),
    ),
    "Patient": (
        ("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything"),
        ("export", _BULK + "patient-export"),
    ),
    "Group": (("export", _BULK + "group-export"),),
}
_SYSTEM_OPERATIONS = (
    ("program-report", _PROGRAM + "ivz-program-report"),
    ("export", _BULK + "export"),
)


#: Types clients may only read: the audit trail is append-only and written by the server.
_READ_ONLY = {"AuditEvent": ("read", "search-type")}


def _interactions(rtype: str) -> tuple[str, ...]:
    return _READ_ONLY.get(rtype, _TYPE_INTERACTIONS)


def _operations(rtype: str) -> list[dict[str, str]]:
    found = _TYPE_OPERATIONS["*"] + _TYPE_OPERATIONS.get(rtype, ())
    return [{"name": name, "definition": url} for name, url in found]


def _search_params(registry: Registry, rtype: str) -> list[dict[str, Any]]:
    params = []
    for code, param in sorted(registry.params_for(rtype).items()):
        entry: dict[str, Any] = {"name": code, "definition": param.url, "type": param.type}
        if param.description:
            entry["documentation"] = param.description
        params.append(entry)
    return params


def _includes(registry: Registry, rtype: str) -> list[str]:
    refs = [c for c, p in sorted(registry.params_for(rtype).items()) if p.type == "reference"]
    return ["*", *(f"{rtype}:{c}" for c in refs)]


def _resource(registry: Registry, rtype: str) -> dict[str, Any]:
    writable = rtype not in _READ_ONLY
    return {
        "type": rtype,
        "interaction": [{"code": code} for code in _interactions(rtype)],
        "versioning": "versioned-update" if writable else "no-version",
        "readHistory": writable,
        "updateCreate": writable,
        "conditionalCreate": writable,
        "conditionalRead": "modified-since" if writable else "not-supported",
        "conditionalUpdate": writable,
        "conditionalDelete": "single" if writable else "not-supported",
        "searchInclude": _includes(registry, rtype),
        "searchParam": _search_params(registry, rtype),
        "operation": _operations(rtype),
    }


def smart_security(token_url: str) -> dict[str, Any]:
    """``rest.security`` of a server that takes SMART Backend Services tokens (docs/auth.md)."""
    return {
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "token", "valueUri": token_url}],
            }
        ],
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 client credentials with private_key_jwt (SMART Backend Services)",
            }
        ],
        "description": "Bearer tokens from the token endpoint; scopes system/<Type>.<cruds>; "
        "row-level access by client kind (docs/access.md)",
    }


def capability_statement(base_url: str, registry: Registry) -> dict[str, Any]:
    """Every type, interaction and search parameter the server supports."""
    resources = [_resource(registry, rtype) for rtype in sorted(resource_types())]
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
                    {"code": "search-system"},
                ],
                "operation": [{"name": n, "definition": url} for n, url in _SYSTEM_OPERATIONS],
            }
        ],
    }

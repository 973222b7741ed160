"""Write-time validation: R4 schema, fhir.resources models, required bindings, program profiles.

Status policy (docs/validation.md): a body that is not a structurally valid R4 resource is a
400; one that is well-formed but breaks content rules (cardinality, required bindings) is a 422.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_server.fhir.bindings import check_required_bindings
from fhir_server.fhir.characters import control_character_issues
from fhir_server.fhir.models import validate_model
from fhir_server.fhir.narrative import check_narratives
from fhir_server.fhir.outcomes import FhirError, Issue
from fhir_server.fhir.schema import resource_types, validate_structure
from fhir_server.profiles.registry import claimed_profile_issues

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

#: Issue codes that mean "well-formed but breaks a rule" rather than "not a valid resource".
_RULE_CODES = frozenset({"code-invalid", "required", "invariant"})


def check_type(resource_type: str) -> None:
    """404 for a resource type R4 does not have, as HAPI and Medplum answer."""
    if resource_type not in resource_types():
        raise FhirError(404, "not-supported", f"Unknown resource type '{resource_type}'")


def check_id(resource_id: str) -> None:
    if not ID_PATTERN.match(resource_id):
        raise FhirError(
            400,
            "value",
            f"Invalid resource id '{resource_id[:80]}': 1-64 characters of A-Z, a-z, 0-9, '-', '.'",
        )


def validate_resource(resource: Any, expected_type: str | None = None) -> dict[str, Any]:
    """Return ``resource`` if it is a valid R4 resource of ``expected_type``; raise otherwise."""
    if not isinstance(resource, dict):
        raise FhirError(400, "structure", "A FHIR resource must be a JSON object")
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise FhirError(400, "required", "Missing resourceType", ("resourceType",))
    if resource_type not in resource_types():
        raise FhirError(400, "not-supported", f"Unknown resource type '{resource_type}'")
    if expected_type is not None and resource_type != expected_type:
        raise FhirError(
            400,
            "invalid",
            f"Resource type '{resource_type}' does not match the URL's type '{expected_type}'",
            ("resourceType",),
        )
    issues = validate_structure(resource) or control_character_issues(resource)
    if not issues:
        issues = validate_model(resource) + check_narratives(resource)
        issues += [
            Issue("code-invalid", v.message, expression=(v.expression,))
            for v in check_required_bindings(resource)
        ]
    if issues:
        status = 422 if all(i.code in _RULE_CODES for i in issues) else 400
        raise FhirError.from_issues(status, issues[:100])
    profile_issues = claimed_profile_issues(resource)  # docs/profiles.md
    if profile_issues:
        raise FhirError.from_issues(422, profile_issues[:100])
    return resource

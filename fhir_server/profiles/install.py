"""Install the conformance resources into the store at start-up, through the service.

``ResourceService.update`` keeps identical content as it is (no new version), so every start
is idempotent and a changed profile becomes a new version of the stored one.
"""

from __future__ import annotations

from fhir_server.profiles.registry import registry
from fhir_server.service.resources import ResourceService


def install_conformance(service: ResourceService) -> int:
    """Store (or keep) every conformance resource of ``profiles/``; returns how many."""
    resources = registry().resources
    for resource in resources:
        service.update(resource["resourceType"], resource["id"], resource)
    return len(resources)

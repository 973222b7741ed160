"""The program's own SearchParameters (``profiles/SearchParameter-*.json``).

Registered with every service's registry when it is built, so every process that writes (the
server, ``ivz demo``, the adapters' commands) indexes them from the first write; the server
also stores them as conformance resources. Core R4 has no parameter for the case links the
access rules follow (ServiceRequest.reasonReference, .supportingInfo, .insurance).
"""

from __future__ import annotations

from fhir_server.profiles.registry import registry as profile_registry
from fhir_server.search.registry import Registry


def add_program_parameters(registry: Registry) -> None:
    for resource in profile_registry().resources:
        if resource["resourceType"] == "SearchParameter":
            registry.add(resource)

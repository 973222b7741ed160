"""``Patient/{id}/$everything``: the Patient compartment as one paged search, plus the
practitioners, organizations and medications its resources reference (``_include=*``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from fhir_server.access.policy import Access
from fhir_server.bulk.select import present_types
from fhir_server.bulk.spec import parse_since
from fhir_server.fhir.outcomes import FhirError
from fhir_server.fhir.schema import resource_types
from fhir_server.search.compartment import patient_compartment
from fhir_server.service.clock import instant
from fhir_server.service.resources import ResourceService
from fhir_server.service.search import SearchResult

#: Referenced resources that describe care, not another patient: cheap to add via _include.
REFERENCED = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "Medication", "Location", "Device"}
)
_ALLOWED = frozenset({"_since", "_type", "_count", "_page"})


def everything(
    service: ResourceService,
    patient_id: str,
    pairs: Sequence[tuple[str, str]],
    base_url: str,
    access: Access | None = None,
) -> SearchResult:
    """The page of the compartment; ``used`` holds the parameters the paging links repeat.

    ``access`` narrows it (and the included resources) to what the client may see."""
    service.read("Patient", patient_id, access)  # 404/410 before anything else
    types, carried, search_pairs = _parameters(pairs)
    with service.db.read() as conn:
        present = present_types(conn)
    wanted = [t for t in (types or sorted(patient_compartment())) if t in present]
    if "Patient" not in wanted and not types:
        wanted.append("Patient")
    if not wanted:
        return SearchResult([], [], 0, None, None, carried)
    result = service.search.search(
        wanted,
        [*search_pairs, ("_include", "*")],
        strict=True,
        base_url=base_url,
        compartment=("Patient", patient_id),
        access=access,
    )
    included = [r for r in result.included if r.resource_type in REFERENCED]
    # The links repeat $everything's own parameters, not the search they became.
    return dataclasses.replace(result, included=included, used=carried)


def _parameters(
    pairs: Sequence[tuple[str, str]],
) -> tuple[list[str], list[tuple[str, str]], list[tuple[str, str]]]:
    types: list[str] = []
    carried: list[tuple[str, str]] = []
    search_pairs: list[tuple[str, str]] = []
    for name, value in pairs:
        if name not in _ALLOWED:
            raise FhirError(
                400, "not-supported", f"$everything does not support parameter '{name}'", (name,)
            )
        if name == "_type":
            carried.append((name, value))
            for rtype in (t.strip() for t in value.split(",")):
                if rtype not in resource_types():
                    raise FhirError(
                        400, "invalid", f"_type '{rtype[:64]}' is not a FHIR resource type"
                    )
                if rtype != "Patient" and rtype not in patient_compartment():
                    raise FhirError(
                        400, "invalid", f"_type {rtype} is not in the Patient compartment"
                    )
                types.append(rtype)
        elif name == "_since":
            carried.append((name, value))
            search_pairs.append(("_lastUpdated", "gt" + instant(parse_since(value))))
        else:
            search_pairs.append((name, value))
    return types, carried, search_pairs

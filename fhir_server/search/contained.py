"""Index values of contained resources, for ``_contained`` searches (docs/search.md).

A contained resource is indexed under its container's ``res_pk`` with its own resource type
and each parameter code prefixed ``#`` (plus its id as the token ``#_id``), so no search
that does not ask for contained resources can ever match those rows, even when a resource
contains one of its own type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from fhir_server.search.extract import IndexValues, TokenValue, extract
from fhir_server.search.registry import Registry

PREFIX = "#"
#: Token parameter holding a contained resource's id (``_id`` of a contained search).
ID_PARAM = PREFIX + "_id"


def index_values(resource: Mapping[str, Any], registry: Registry) -> list[IndexValues]:
    """The resource's own index values, then those of each resource it contains."""
    found = [extract(resource, registry)]
    contained = resource.get("contained")
    if not isinstance(contained, list):
        return found
    for inner in contained:
        if isinstance(inner, dict) and isinstance(inner.get("resourceType"), str):
            found.append(_prefixed(extract(inner, registry), inner.get("id")))
    return found


def _prefixed(values: IndexValues, contained_id: Any) -> IndexValues:
    out = IndexValues(values.resource_type)
    for f in fields(IndexValues):
        if f.name == "resource_type":
            continue
        setattr(out, f.name, [v._replace(param=PREFIX + v.param) for v in getattr(values, f.name)])
    if isinstance(contained_id, str) and contained_id:
        out.tokens.append(TokenValue(ID_PARAM, None, contained_id))
    return out

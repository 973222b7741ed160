"""Kick-off parameters of ``$export``, checked up front so a bad request never becomes a job."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from fhir_server.access.policy import Access
from fhir_server.fhir.outcomes import FhirError
from fhir_server.fhir.schema import resource_types
from fhir_server.search.compartment import patient_compartment
from fhir_server.service.clock import parse_instant

OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
_KNOWN = frozenset({"_outputFormat", "_type", "_since", "_typeFilter", "patient", "_elements"})
LEVELS = ("system", "patient", "group")


@dataclass(frozen=True)
class ExportSpec:
    """What a job exports; stored as JSON on the job row and re-read after a restart."""

    level: str
    types: list[str]
    since: str | None = None
    group_id: str | None = None
    #: (type, query string) pairs from ``_typeFilter``; several for one type are ORed.
    type_filters: list[tuple[str, str]] = field(default_factory=list)
    #: The requesting client's row-level access as [client id, kind, value] (None: all).
    access: list[str | None] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> ExportSpec:
        data: dict[str, Any] = json.loads(text)
        data["type_filters"] = [tuple(p) for p in data.get("type_filters", [])]
        return ExportSpec(**data)

    @property
    def restricted_to(self) -> Access | None:
        if self.access is None:
            return None
        client_id, kind, value = self.access
        return Access(str(client_id), str(kind), value)

    @property
    def since_time(self) -> datetime | None:
        return None if self.since is None else parse_instant(self.since, "_since")

    def filters_of(self, rtype: str) -> list[str]:
        return [q for t, q in self.type_filters if t == rtype]


def _bad(message: str, param: str) -> FhirError:
    return FhirError(400, "invalid", message, (param,))


def parse_spec(level: str, pairs: Sequence[tuple[str, str]], group_id: str | None) -> ExportSpec:
    """Check ``_outputFormat``, ``_type``, ``_since`` and ``_typeFilter``; 400 on any fault."""
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in _KNOWN:
            raise _bad(f"Unsupported $export parameter '{name[:64]}'", name[:64])
        values.setdefault(name, []).append(value)
    for fmt in values.get("_outputFormat", []):
        if fmt not in OUTPUT_FORMATS:
            raise _bad(
                f"Unsupported _outputFormat '{fmt[:60]}'; use application/fhir+ndjson",
                "_outputFormat",
            )
    if "patient" in values or "_elements" in values:
        name = "patient" if "patient" in values else "_elements"
        raise FhirError(400, "not-supported", f"$export parameter '{name}' is not supported")
    allowed = _allowed_types(level)
    types: list[str] = []
    for text in values.get("_type", []):
        for rtype in (t.strip() for t in text.split(",")):
            if rtype not in allowed:
                raise _bad(_type_problem(rtype, level), "_type")
            if rtype not in types:
                types.append(rtype)
    since: str | None = None
    if values.get("_since"):
        if len(values["_since"]) > 1:
            raise _bad("_since may be given once", "_since")
        since = values["_since"][0]
        parsed = parse_since(since)
        since = parsed.isoformat()
    filters: list[tuple[str, str]] = []
    for text in values.get("_typeFilter", []):
        for item in _split_filters(text):
            rtype, sep, query = item.partition("?")
            if not sep or not query or rtype not in allowed:
                raise _bad(
                    f"_typeFilter '{item[:80]}' is not Type?query for an exported type",
                    "_typeFilter",
                )
            if types and rtype not in types:
                raise _bad(
                    f"_typeFilter names {rtype}, which _type does not include", "_typeFilter"
                )
            if not parse_qsl(query, keep_blank_values=True):
                raise _bad(f"_typeFilter '{item[:80]}' has no search criteria", "_typeFilter")
            filters.append((rtype, query))
    return ExportSpec(level, types or sorted(allowed), since, group_id, filters)


def parse_since(text: str) -> datetime:
    """An instant (400 otherwise): a date alone would be ambiguous across time zones."""
    try:
        value = parse_instant(text, "_since")
    except FhirError as exc:
        raise _bad(exc.diagnostics, "_since") from exc
    if "T" not in text:
        raise _bad(f"_since '{text[:60]}' must be an instant (date and time with zone)", "_since")
    return value


def _split_filters(text: str) -> list[str]:
    """``_typeFilter`` is a comma list of ``Type?query``; a part without ``?`` continues a value."""
    items: list[str] = []
    for part in text.split(","):
        if items and "?" not in part:
            items[-1] += "," + part
        elif part:
            items.append(part)
    return items


def _allowed_types(level: str) -> set[str]:
    if level == "system":
        return set(resource_types())
    return set(patient_compartment()) | {"Patient"}


def _type_problem(rtype: str, level: str) -> str:
    if rtype in resource_types():
        return f"_type {rtype} is not in the Patient compartment, so not in a {level}-level export"
    return f"_type '{rtype[:64]}' is not a FHIR resource type"

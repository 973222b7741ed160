"""Parsing ``GET /fhir/AuditEvent`` parameters into an ``AuditQuery``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fhir_server.fhir.outcomes import FhirError
from fhir_server.search.fhirpath import split_reference
from fhir_server.search.request import has_control
from fhir_server.service.clock import parse_instant
from fhir_server.storage.audit import AuditQuery

#: Parameters that only shape the response; handled by the renderer.
IGNORED = frozenset({"_format", "_pretty"})
_PREFIXES = ("ge", "gt", "le", "lt", "eq")


def parse(
    pairs: list[tuple[str, str]], default_count: int, max_count: int
) -> tuple[AuditQuery, int, int | None]:
    """(filters, page size, keyset cursor); unknown parameters are a 400, not ignored."""
    fields: dict[str, str] = {}
    dates: list[tuple[str, datetime]] = []
    count, cursor = default_count, None
    for name, value in pairs:
        if name in IGNORED:
            continue
        if has_control(name) or has_control(value):
            raise FhirError(400, "value", f"Parameter '{name[:40]}' contains a control character")
        if name == "date":
            dates.extend(_date(value))
        elif name in ("agent", "client"):
            fields["client"] = _token(value)
        elif name in ("subtype", "outcome", "action"):
            fields[name] = _token(value)
        elif name == "entity":
            fields["entity"] = _reference(value)
        elif name == "_count":
            count = min(max(_int(name, value), 1), max_count)
        elif name == "_cursor":
            cursor = _int(name, value)
            if cursor >= 2**63:
                raise FhirError(400, "value", "Invalid _cursor", ("_cursor",))
        else:
            raise FhirError(400, "not-supported", f"Unknown AuditEvent search parameter '{name}'")
    return AuditQuery(recorded=tuple(dates), **fields), count, cursor


def _token(value: str) -> str:
    return value.rsplit("|", 1)[-1]


def _reference(value: str) -> str:
    """``Type/id`` of a relative or absolute reference (as events store entities)."""
    parsed = split_reference(value.rstrip("/"))
    if parsed is None or parsed.type is None:
        return value
    return f"{parsed.type}/{parsed.id}"


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise FhirError(400, "value", f"Invalid {name} value '{value[:40]}'") from exc


def _date(value: str) -> list[tuple[str, datetime]]:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    text = value[2:] if value[:2] in _PREFIXES else value
    try:
        start, end = _range(text)
    except (ValueError, OverflowError) as exc:  # year 0000, or a range past 9999-12-31
        raise FhirError(400, "value", f"Invalid date '{text[:40]}'", ("date",)) from exc
    if prefix == "ge":
        return [(">=", start)]
    if prefix == "gt":
        return [(">=", end)]
    if prefix == "le":
        return [("<", end)]
    if prefix == "lt":
        return [("<", start)]
    return [(">=", start), ("<", end)]


def _range(text: str) -> tuple[datetime, datetime]:
    """The interval a (partial) date or instant stands for."""
    if len(text) == 4 and text.isdigit():
        start = datetime(int(text), 1, 1, tzinfo=UTC)
        return start, start.replace(year=start.year + 1)
    if len(text) == 7:
        start = parse_instant(text + "-01", "date")
        nxt = (start + timedelta(days=32)).replace(day=1)
        return start, nxt
    if len(text) == 10:
        start = parse_instant(text, "date")
        return start, start + timedelta(days=1)
    start = parse_instant(text, "date")
    step = timedelta(milliseconds=1) if "." in text else timedelta(seconds=1)
    return start, start + step

"""What a request does, from its method and path: the FHIR interaction, action and entities.

Classification needs no routing table: the FHIR URL grammar is regular enough, and doing it
from the path keeps the audit independent of which endpoint (or error handler) answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.fhir import jsonio

#: FHIR restful-interaction code → AuditEvent.action (C/R/U/D/E).
ACTIONS = {
    "read": "R",
    "vread": "R",
    "search-type": "R",
    "search-system": "R",
    "history-instance": "R",
    "history-type": "R",
    "history-system": "R",
    "capabilities": "R",
    "create": "C",
    "update": "U",
    "patch": "U",
    "delete": "D",
    "transaction": "E",
    "batch": "E",
    "operation": "E",
}
#: Entities listed for one bundle; the rest is counted in the description.
MAX_BUNDLE_ENTITIES = 200


@dataclass(frozen=True, slots=True)
class Interaction:
    """The interaction's code, its action, the references touched and a search query."""

    subtype: str
    action: str
    references: tuple[str, ...] = ()
    query: str | None = None
    detail: str | None = None


def classify(method: str, fhir_path: str | None, path: str, query: str) -> Interaction:
    """``fhir_path`` is the path below the FHIR base, or None for other endpoints."""
    if fhir_path is None:  # /hl7v2, /ingest/insurer, /report/*, /profiles…
        action = "C" if method == "POST" else "R"
        return Interaction("operation", action, (), query or None, f"{method} {path}")
    parts = [p for p in fhir_path.split("/") if p]
    op = next((p for p in parts if p.startswith("$")), None)
    if op is not None:
        refs: tuple[str, ...] = (f"{parts[0]}/{parts[1]}",) if len(parts) == 3 else ()
        return Interaction("operation", "E", refs, query or None, op)
    code, found, searching = _rest(method, parts, query)
    return Interaction(code, ACTIONS.get(code, "E"), found, query if searching else None)


def _rest(method: str, parts: list[str], query: str) -> tuple[str, tuple[str, ...], bool]:
    n = len(parts)
    if method in ("GET", "HEAD"):
        if n == 0:
            return "search-system", (), True
        if parts == ["metadata"]:
            return "capabilities", (), False
        if parts == ["_history"]:
            return "history-system", (), False
        if n == 1:
            return "search-type", (), True
        if n == 2 and parts[1] == "_history":
            return "history-type", (), False
        if n == 2:
            return "read", (f"{parts[0]}/{parts[1]}",), False
        if n == 3 and parts[2] == "_history":
            return "history-instance", (f"{parts[0]}/{parts[1]}",), False
        if n == 4 and parts[2] == "_history":
            return "vread", (f"{parts[0]}/{parts[1]}/_history/{parts[3]}",), False
        if n == 3:  # compartment search
            return "search-type", (f"{parts[0]}/{parts[1]}",), True
        return "read", (), False
    if method == "POST":
        if n == 0:
            return "transaction", (), False  # refined from the body by ``bundle_entities``
        if n == 2 and parts[1] == "_search":
            return "search-type", (), True
        return "create", (), False
    if method == "PUT":
        return "update", _instance(parts), bool(query) and n == 1
    if method == "PATCH":
        return "patch", _instance(parts), bool(query) and n == 1
    if method == "DELETE":
        return "delete", _instance(parts), bool(query) and n == 1
    return "operation", (), False


def _instance(parts: list[str]) -> tuple[str, ...]:
    return (f"{parts[0]}/{parts[1]}",) if len(parts) >= 2 else ()


#: ``scope["state"]`` key under which the bundle endpoint leaves its summary for the audit
#: middleware, so that a 100-entry bundle is not parsed a second time just to be audited.
BUNDLE_SUMMARY = "audit_bundle_summary"

BundleSummary = tuple[str, tuple[str, ...], str | None]


def bundle_entities(body: bytes) -> BundleSummary:
    """(``transaction``/``batch``, the entries' references, a summary) from a JSON Bundle."""
    try:
        bundle: Any = jsonio.loads(body)
    except Exception:
        return "transaction", (), None
    return bundle_summary(bundle)


def bundle_summary(bundle: Any) -> BundleSummary:
    """``bundle_entities`` of an already parsed Bundle (JSON or XML)."""
    if not isinstance(bundle, dict):
        return "transaction", (), None
    kind = "batch" if bundle.get("type") == "batch" else "transaction"
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return kind, (), None
    refs: list[str] = []
    for entry in entries[:MAX_BUNDLE_ENTITIES]:
        refs.extend(_entry_reference(entry))
    summary = f"{len(entries)} entries"
    if len(entries) > MAX_BUNDLE_ENTITIES:
        summary += f"; the first {MAX_BUNDLE_ENTITIES} are listed"
    return kind, tuple(dict.fromkeys(refs)), summary


def _entry_reference(entry: Any) -> list[str]:
    if not isinstance(entry, dict):
        return []
    request = entry.get("request")
    url = request.get("url") if isinstance(request, dict) else None
    if not isinstance(url, str):
        return []
    parts = [p for p in url.split("?")[0].split("/") if p]
    if len(parts) >= 2 and not parts[1].startswith(("$", "_")):
        return [f"{parts[0]}/{parts[1]}"]
    resource = entry.get("resource")
    if isinstance(resource, dict) and isinstance(resource.get("id"), str) and parts:
        return [f"{parts[0]}/{resource['id']}"]
    return []  # a create without id: its id is only in the response Bundle

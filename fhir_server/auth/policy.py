"""What an HTTP request needs: (resource type, permission) pairs from its method and path.

Permissions are SMART v2 letters: c(reate) r(ead) u(pdate) d(elete) s(earch). ``None`` means
the path is open (discovery, health, the token endpoint). Operations need the rights on what
they read and write (``OPERATIONS``); an operation not listed needs every right on every
type, so that a new operation is closed until someone decides what it touches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fhir_server.auth.scopes import permits

Need = tuple[str, str]
_ALL: list[Need] = [("*", p) for p in "cruds"]
_WRITE_ANY: list[Need] = [("*", "c"), ("*", "u")]
_READ_ANY: list[Need] = [("*", "r"), ("*", "s")]

#: Operation name → rights, given the resource type of the path ("*" at system level).
OPERATIONS: dict[str, Callable[[str], list[Need]]] = {
    "$validate": lambda t: [(t, "r")],
    "$verdict": lambda t: [
        ("ServiceRequest", "r"),
        ("Observation", "c"),
        ("Observation", "u"),
        ("CarePlan", "c"),
        ("CarePlan", "u"),
    ],
    "$amend-verdict": lambda t: [
        ("ServiceRequest", "r"),
        ("Observation", "c"),
        ("Observation", "u"),
        ("CarePlan", "c"),
        ("CarePlan", "u"),
    ],
    "$pathway": lambda t: [
        ("ServiceRequest", "r"),
        ("Appointment", "s"),
        ("Observation", "s"),
        ("CarePlan", "s"),
    ],
    "$book": lambda t: [("ServiceRequest", "r"), ("Appointment", "c"), ("Slot", "u")],
    "$program-report": lambda t: _READ_ANY,
    "$everything": lambda t: [("Patient", "r"), ("*", "s")],
    "$export": lambda t: _READ_ANY,
    # polling and fetching a job's files: the job itself is checked against its owner
    "$export-status": lambda t: _READ_ANY,
    "$export-file": lambda t: _READ_ANY,
    "$reindex": lambda t: _ALL,
}
_OPEN_PREFIXES = ("/healthz", "/.well-known/", "/auth/", "/profiles")
_PAGES = {"/hl7v2": _WRITE_ANY, "/ingest/insurer": _WRITE_ANY}


def needs(method: str, path: str, query: str, base_path: str) -> list[Need] | None:
    """The rights a request needs (a bundle's entries are added by ``bundle_needs``)."""
    if path.startswith(_OPEN_PREFIXES) or path in (
        base_path + "/metadata",
        base_path + "/.well-known/smart-configuration",
    ):
        return None
    if path in _PAGES:
        return _PAGES[path]
    if path.startswith("/report/"):
        return _READ_ANY
    if path != base_path and not path.startswith(base_path + "/"):
        return []  # not a FHIR route: authenticated, and routing answers 404
    segments = [s for s in path[len(base_path) :].split("/") if s]
    return _fhir_needs(method.upper(), segments, query)


def _fhir_needs(method: str, segments: list[str], query: str) -> list[Need]:
    method = "GET" if method == "HEAD" else method
    ops = [s for s in segments if s.startswith("$")]
    if ops:
        resource_type = segments[0] if not segments[0].startswith("$") else "*"
        rule = OPERATIONS.get(ops[0])
        return rule(resource_type) if rule is not None else _ALL
    if not segments:
        if method == "GET":
            types = [t for v in _values(query, "_type") for t in v.split(",") if t.strip()]
            return [(t.strip(), "s") for t in types] or [("*", "s")]
        return []  # POST: batch/transaction, checked per entry
    if segments == ["_history"]:
        return [("*", "r")]
    resource_type = segments[0]
    rest = segments[1:]
    if not rest:
        verb = {"GET": "s", "POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}.get(method)
        return [(resource_type, verb)] if verb else []
    if rest in (["_search"], ["_history"]):
        return [(resource_type, "s" if rest == ["_search"] else "r")]
    if len(rest) == 1:
        verb = {"GET": "r", "PUT": "u", "PATCH": "u", "DELETE": "d"}.get(method)
        return [(resource_type, verb)] if verb else []
    if rest[1] == "_history":
        return [(resource_type, "r")]
    if len(rest) == 2:  # compartment search: Patient/1/Observation
        return [(resource_type, "r"), (rest[1], "s")]
    return []


def _values(query: str, name: str) -> list[str]:
    return [v for k, v in parse_qsl(query, keep_blank_values=True) if k == name]


def bundle_needs(bundle: Any, base_path: str) -> list[Need]:
    """The rights of every entry of a batch or transaction Bundle (as its own request)."""
    found: list[Need] = []
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict):
            continue
        method = str(request.get("method", "GET"))
        url = urlsplit(str(request.get("url", "")))
        path = url.path if url.path.startswith("/") else "/" + url.path
        if not path.startswith(base_path + "/"):
            path = base_path + path
        found.extend(needs(method, path, url.query, base_path) or [])
    return found


def missing(granted: Iterable[str], required: Iterable[Need]) -> list[Need]:
    """The required rights that ``granted`` scopes do not give."""
    scopes = list(granted)
    return [n for n in required if not permits(scopes, n[0], n[1])]

"""Reading the audit trail back through ``GET /fhir/AuditEvent``."""

from __future__ import annotations

import base64
from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"


def events(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """Matching AuditEvents, newest first (the search commits what is queued first)."""
    r = client.get("/AuditEvent", params={"_count": "50", **params})
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def only(client: httpx.Client, **params: str) -> dict[str, Any]:
    found = events(client, **params)
    assert len(found) == 1, [e.get("outcomeDesc") for e in found]
    return found[0]


def subtype(event: dict[str, Any]) -> str:
    code: str = event["subtype"][0]["code"]
    return code


def references(event: dict[str, Any]) -> list[str]:
    return [e["what"]["reference"] for e in event.get("entity", []) if "what" in e]


def query_of(event: dict[str, Any]) -> str:
    queries = [e["query"] for e in event.get("entity", []) if "query" in e]
    assert len(queries) == 1, event
    return base64.b64decode(queries[0]).decode()


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    return client.post(path, json=body, headers={"Content-Type": FHIR_JSON})

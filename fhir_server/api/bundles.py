"""Bundle documents for history and batch/transaction responses."""

from __future__ import annotations

import uuid
from typing import Any

from fhir_server.api.http import etag
from fhir_server.api.render import View, resource_value
from fhir_server.service.clock import instant, now
from fhir_server.service.transaction import EntryResult
from fhir_server.storage.repository import HistoryPage, StoredVersion

_METHOD_STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "200 OK"}


def _links(links: dict[str, str]) -> list[dict[str, str]]:
    return [{"relation": rel, "url": url} for rel, url in links.items()]


def history_entry(v: StoredVersion, base: str, view: View) -> dict[str, Any]:
    url = f"{v.resource_type}/{v.id}"
    entry: dict[str, Any] = {"fullUrl": f"{base}/{url}"}
    if v.content is not None:
        entry["resource"] = resource_value(v.content, view)
    method = v.method if v.method in _METHOD_STATUS else "PUT"
    status = "201 Created" if v.version_id == 1 and method != "DELETE" else _METHOD_STATUS[method]
    entry["request"] = {"method": method, "url": url if method != "POST" else v.resource_type}
    entry["response"] = {
        "status": status,
        "etag": etag(v.version_id),
        "lastModified": instant(v.last_updated),
    }
    return entry


def history_bundle(
    page: HistoryPage, links: dict[str, str], base: str, view: View
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(now())},
        "type": "history",
    }
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = _links(links)
    bundle["entry"] = [history_entry(v, base, view) for v in page.entries]
    return bundle


def response_bundle(
    kind: str, results: list[EntryResult], base: str, view: View, representation: bool
) -> dict[str, Any]:
    entries = []
    for r in results:
        entry: dict[str, Any] = {}
        response: dict[str, Any] = {"status": r.status_line}
        if r.stored is not None:
            s = r.stored
            entry["fullUrl"] = f"{base}/{s.resource_type}/{s.id}"
            if (representation or r.read) and s.content is not None:
                entry["resource"] = resource_value(s.content, view)
            if r.status in (200, 201) and not s.deleted:
                response["location"] = f"{s.resource_type}/{s.id}/_history/{s.version_id}"
            response["etag"] = etag(s.version_id)
            response["lastModified"] = instant(s.last_updated)
        if r.history is not None:
            entry["resource"] = {
                "resourceType": "Bundle",
                "type": "history",
                "total": len(r.history),
                "entry": [history_entry(v, base, view) for v in r.history],
            }
        if r.outcome is not None:
            response["outcome"] = r.outcome
        entry["response"] = response
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": f"{kind}-response",
        "link": [{"relation": "self", "url": base}],
        "entry": entries,
    }

"""Bundle documents for history and batch/transaction responses."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from fhir_server.api.http import etag
from fhir_server.api.render import View, resource_value
from fhir_server.fhir.outcomes import Issue, operation_outcome
from fhir_server.service.clock import instant, now
from fhir_server.service.search import SearchResult
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
        if r.search is not None:
            path = base
            entry["resource"] = searchset(r.search, path, [], base, view)
        if r.outcome is not None:
            response["outcome"] = r.outcome
        elif warnings := r.own_warnings():
            response["outcome"] = operation_outcome(
                [Issue("informational", w, severity="warning") for w in warnings]
            )
        entry["response"] = response
        entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": f"{kind}-response",
        "link": [{"relation": "self", "url": base}],
        "entry": entries,
    }


#: Result parameters carried from the request into paging links.
_CARRIED = (
    "_type",
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
    "_total",
)


def _query(pairs: list[tuple[str, str]]) -> str:
    return urlencode(pairs, safe=":|,/$")


def searchset(
    result: SearchResult,
    path: str,
    request_pairs: list[tuple[str, str]],
    base: str,
    view: View,
) -> dict[str, Any]:
    """A searchset Bundle: matches, includes, an outcome entry for ignored parameters."""
    carried = [(name, value) for name, value in request_pairs if name.partition(":")[0] in _CARRIED]
    links = {"self": f"{path}?{_query(result.used + carried)}".rstrip("?")}
    if result.next_cursor:
        links["next"] = f"{path}?{_query([*result.used, *carried, ('_page', result.next_cursor)])}"
    if result.prev_cursor:
        links["previous"] = (
            f"{path}?{_query([*result.used, *carried, ('_page', result.prev_cursor)])}"
        )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(now())},
        "type": "searchset",
    }
    if result.total is not None:
        bundle["total"] = result.total
    bundle["link"] = _links(links)
    entries = [_search_entry(s, base, view, "match") for s in result.matches]
    entries += [_search_entry(s, base, view, "include") for s in result.included]
    if result.warnings:
        outcome = operation_outcome(
            [Issue("not-supported", w, severity="warning") for w in result.warnings]
        )
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return bundle


def _search_entry(s: StoredVersion, base: str, view: View, mode: str) -> dict[str, Any]:
    assert s.content is not None
    return {
        "fullUrl": f"{base}/{s.resource_type}/{s.id}",
        "resource": resource_value(s.content, view),
        "search": {"mode": mode},
    }

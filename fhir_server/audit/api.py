"""``/fhir/AuditEvent``: searched and read from the audit table; never written by clients.

Registered as operation routes, so they win over the generic RESTful routes of ``rest.py``.
When authorization is on only principals of kind ``admin`` may read (others get 403); the
principal is the one the authorization middleware put on ``request.state.principal``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.http import read_body
from fhir_server.api.operations import operation
from fhir_server.api.render import media_type, resource_body, resource_value, respond, view_of
from fhir_server.api.rest import base_url
from fhir_server.audit import query as audit_query
from fhir_server.audit.writer import AuditWriter
from fhir_server.fhir.outcomes import FhirError
from fhir_server.storage.audit import read_event, search_events
from fhir_server.storage.database import Database

TYPE = "/AuditEvent"


def _guard(request: Request) -> None:
    """Admins only when authorization is on; open (local development) when it is off."""
    principal = getattr(request.state, "principal", None)
    if principal is None and request.app.state.settings.auth != "on":
        return
    if getattr(principal, "kind", None) != "admin":
        raise FhirError(403, "forbidden", "Only administrators may read the audit trail")


async def _synced(request: Request) -> Database:
    """Commit what this process queued so far: a search sees every earlier request."""
    writer: AuditWriter | None = getattr(request.app.state, "audit", None)
    if writer is not None and not await run_in_threadpool(writer.sync):
        raise FhirError(503, "transient", "The audit trail is not written yet; try again")
    db: Database = request.app.state.db
    return db


@operation(TYPE, "GET")
async def search(request: Request) -> Response:
    return await _search(request, list(request.query_params.multi_items()))


@operation(TYPE + "/_search", "POST")
async def search_form(request: Request) -> Response:
    _guard(request)
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    form = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return await _search(request, list(request.query_params.multi_items()) + form)


async def _search(request: Request, pairs: list[tuple[str, str]]) -> Response:
    _guard(request)
    view = view_of(request)
    settings = request.app.state.settings
    filters, count, cursor = audit_query.parse(
        pairs, settings.default_page_size, settings.max_page_size
    )
    db = await _synced(request)

    def run() -> list[tuple[int, bytes]]:
        with db.read(single=True) as conn:
            return search_events(conn, filters, count + 1, cursor)

    rows = await run_in_threadpool(run)
    base = base_url(request)
    kept = [(k, v) for k, v in pairs if k != "_cursor"]
    links = [{"relation": "self", "url": _url(base, kept + _cursor(cursor))}]
    if len(rows) > count:
        rows = rows[:count]
        links.append({"relation": "next", "url": _url(base, kept + _cursor(rows[-1][0]))})
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{base}/AuditEvent/{_id_of(content)}",
                "resource": resource_value(content, view),
                "search": {"mode": "match"},
            }
            for _, content in rows
        ],
    }
    return respond(bundle, view)


def _cursor(value: int | None) -> list[tuple[str, str]]:
    return [] if value is None else [("_cursor", str(value))]


def _url(base: str, pairs: list[tuple[str, str]]) -> str:
    return f"{base}{TYPE}" + ("?" + urlencode(pairs) if pairs else "")


def _id_of(content: bytes) -> str:
    # Written by event.build: "resourceType" first, then "id"; parse only that prefix.
    start = content.index(b'"id":"') + 6
    return content[start : content.index(b'"', start)].decode()


async def refuse_history(request: Request, **_: str) -> Response:
    """History of an append-only, single-version trail is the search itself."""
    return await refuse(request)


operation(TYPE + "/_history", "GET")(refuse_history)
operation(TYPE + "/{resource_id}/_history", "GET")(refuse_history)


@operation(TYPE + "/{resource_id}", "GET")
async def read(request: Request, resource_id: str) -> Response:
    return await _read(request, resource_id)


@operation(TYPE + "/{resource_id}/_history/{version_id}", "GET")
async def vread(request: Request, resource_id: str, version_id: str) -> Response:
    if version_id != "1":  # audit events have exactly one version
        _guard(request)
        raise FhirError(404, "not-found", f"AuditEvent/{resource_id} has no version {version_id}")
    return await _read(request, resource_id)


async def _read(request: Request, resource_id: str) -> Response:
    _guard(request)
    view = view_of(request)
    db = await _synced(request)

    def run() -> bytes | None:
        with db.read(single=True) as conn:
            return read_event(conn, resource_id)

    content = await run_in_threadpool(run)
    if content is None:
        raise FhirError(404, "not-found", f"AuditEvent/{resource_id} is not known")
    return Response(resource_body(content, view), 200, media_type=media_type(view))


async def refuse(request: Request, **_: str) -> Response:
    """Clients never write the audit trail: 405 for every write and for history."""
    raise FhirError(
        405,
        "not-supported",
        f"{request.method} is not allowed on {request.url.path}: the audit trail is append-only "
        "and written by the server",
        headers={"Allow": "GET"},
    )


for _method in ("POST", "PUT", "PATCH", "DELETE"):
    operation(TYPE, _method)(refuse)
    operation(TYPE + "/{resource_id}", _method)(refuse)

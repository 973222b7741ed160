"""The FHIR RESTful interactions: one thin function each, HTTP in, service call, HTTP out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.access.policy import Access, access_of
from fhir_server.api import bundles
from fhir_server.api.http import (
    body_format,
    etag,
    http_date,
    parse_etag,
    parse_http_date,
    parse_resource,
    prefer,
    read_body,
)
from fhir_server.api.metadata import smart_security
from fhir_server.api.render import View, media_type, resource_body, respond, view_of
from fhir_server.audit.classify import BUNDLE_SUMMARY, bundle_summary
from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError, Issue, information, operation_outcome
from fhir_server.fhir.schema import resource_types
from fhir_server.logging import get_logger
from fhir_server.service.clock import instant, parse_instant
from fhir_server.service.resources import ResourceService, WriteResult
from fhir_server.service.transaction import process
from fhir_server.service.validation import check_id, check_type
from fhir_server.storage.repository import StoredVersion

log = get_logger(__name__)

Endpoint = Callable[..., Awaitable[Response]]
#: (path below the FHIR base, method, endpoint): plain Starlette routes, composed in create_app.
#: FastAPI's parameter machinery would cost more than the whole read path; these endpoints
#: take the Request only.
ROUTES: list[tuple[str, str, Callable[[Request], Awaitable[Response]]]] = []


def route(path: str, method: str) -> Callable[[Endpoint], Endpoint]:
    """Register ``fn(request, **path_params)`` for one method and path."""

    def register(fn: Endpoint) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return await fn(request, **request.path_params)

        endpoint.__name__ = fn.__name__
        ROUTES.append((path, method, endpoint))
        return fn

    return register


def _service(request: Request) -> ResourceService:
    service: ResourceService = request.app.state.service
    return service


def access(request: Request) -> Access | None:
    """The client's row-level access (None: unrestricted), from the auth middleware."""
    return access_of(getattr(request.state, "principal", None))


def base_url(request: Request) -> str:
    """The FHIR base as the client addressed it (or as configured behind a proxy)."""
    settings = request.app.state.settings
    configured: str = settings.public_base_url
    base_path: str = settings.base_path
    if configured:
        return configured.rstrip("/")
    host = request.headers.get("host")
    if host is None:
        return str(request.base_url).rstrip("/") + base_path
    return f"{request.scope.get('scheme', 'http')}://{host}{base_path}"


def _limit(request: Request) -> int:
    limit: int = request.app.state.settings.max_body_bytes
    return limit


def _version_headers(request: Request, stored: StoredVersion) -> dict[str, str]:
    location = (
        f"{base_url(request)}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
    )
    return {
        "ETag": etag(stored.version_id),
        "Last-Modified": http_date(stored.last_updated),
        "Content-Location": location,
    }


def _not_modified(request: Request, stored: StoredVersion) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/").strip('"') for t in if_none_match.split(",")}
        return "*" in tags or str(stored.version_id) in tags
    since = request.headers.get("if-modified-since")
    if since is not None:
        when = parse_http_date(since)
        return when is not None and stored.last_updated.replace(microsecond=0) <= when
    return False


def _show(request: Request, stored: StoredVersion, status: int = 200) -> Response:
    headers = _version_headers(request, stored)
    if _not_modified(request, stored):
        return Response(status_code=304, headers=headers)
    view = view_of(request)
    assert stored.content is not None
    return Response(resource_body(stored.content, view), status, headers, media_type(view))


def _written(request: Request, result: WriteResult, view: View) -> Response:
    stored = result.stored
    status = 201 if result.created else 200
    headers = _version_headers(request, stored)
    headers["Location"] = headers["Content-Location"]
    wanted = prefer(request, "return") or "representation"
    if wanted == "minimal":
        return Response(status_code=status, headers=headers)
    if wanted == "operationoutcome":
        verb = "Created" if result.created else "Updated"
        message = f"{verb} {stored.resource_type}/{stored.id} version {stored.version_id}"
        issues = [Issue("informational", message, severity="information")]
        issues += [Issue("informational", w, severity="warning") for w in result.warnings]
        return respond(operation_outcome(issues), view, status, headers)
    assert stored.content is not None
    return Response(resource_body(stored.content, view), status, headers, media_type(view))


async def _resource_from_body(request: Request) -> Any:
    fmt = body_format(request)
    return parse_resource(await read_body(request, _limit(request)), fmt)


# --- system level -----------------------------------------------------------------------------


@route("/metadata", "GET")
async def capabilities(request: Request) -> Response:
    view = view_of(request)
    statement = dict(request.app.state.capabilities)
    statement["implementation"] = {**statement["implementation"], "url": base_url(request)}
    if request.app.state.settings.auth != "off":
        from fhir_server.auth.urls import token_url  # auth.urls builds on this module

        rest_part = {**statement["rest"][0], "security": smart_security(token_url(request))}
        statement["rest"] = [rest_part, *statement["rest"][1:]]
    return respond(statement, view)


@route("/$reindex", "POST")
async def reindex_all(request: Request) -> Response:
    return await _reindex(request, None)


@route("/{resource_type}/$reindex", "POST")
async def reindex_type(request: Request, resource_type: str) -> Response:
    check_type(resource_type)
    return await _reindex(request, resource_type)


async def _reindex(request: Request, resource_type: str | None) -> Response:
    """``$reindex``: rebuild search indexes (e.g. for a new SearchParameter); progress is logged."""
    if access(request) is not None:  # it reads and rewrites every client's resources
        raise FhirError(403, "forbidden", "$reindex is for administrators")
    scope = resource_type or "all types"

    def progress(done: int) -> None:
        log.info("reindex progress", scope=scope, resources=done)

    count = await run_in_threadpool(_service(request).reindex, resource_type, 500, progress)
    log.info("reindex finished", scope=scope, resources=count)
    result = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "count", "valueInteger": count},
            {"name": "scope", "valueString": scope},
        ],
    }
    return respond(result, view_of(request))


@route("", "POST")
@route("/", "POST")
async def batch_or_transaction(request: Request) -> Response:
    view = view_of(request)
    bundle = await _resource_from_body(request)
    setattr(request.state, BUNDLE_SUMMARY, bundle_summary(bundle))  # for the audit trail
    limit = request.app.state.settings.max_bundle_entries
    kind, results = await run_in_threadpool(
        process, _service(request), bundle, base_url(request), limit, access(request)
    )
    representation = prefer(request, "return") == "representation"
    return respond(
        bundles.response_bundle(kind, results, base_url(request), view, representation), view
    )


@route("/_history", "GET")
async def history_system(request: Request) -> Response:
    return await _history(request, None, None)


@route("", "GET")
@route("/", "GET")
async def search_system(request: Request) -> Response:
    """``GET /fhir?_type=A,B&…``: search across types (common parameters only)."""
    types_param = request.query_params.get("_type")
    types = sorted({t.strip() for t in (types_param or "").split(",") if t.strip()})
    searchable = sorted(_service(request).registry.resource_types() & resource_types())
    return await _search(request, types or searchable, _pairs(request), base_url(request))


# --- search -------------------------------------------------------------------------------------


def _pairs(request: Request) -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.query_params.multi_items() if k != "_type"]


async def _search(
    request: Request,
    types: list[str],
    pairs: list[tuple[str, str]],
    path: str,
    compartment: tuple[str, str] | None = None,
) -> Response:
    view = view_of(request)
    search = _service(request).search
    strict = prefer(request, "handling") == "strict"
    base = base_url(request)
    client = access(request)
    if compartment is not None and client is not None:  # its owner must be visible, else 404
        await run_in_threadpool(_service(request).read, *compartment, client)
    result = await run_in_threadpool(
        lambda: search.search(
            types, pairs, strict=strict, base_url=base, compartment=compartment, access=client
        )
    )
    entry_view = View(
        view.fmt,
        view.pretty,
        result.request.summary if result.request else None,
        result.request.elements if result.request else (),
    )
    link_pairs = pairs + [(k, v) for k, v in request.query_params.multi_items() if k == "_type"]
    bundle = bundles.searchset(result, path, link_pairs, base, entry_view)
    return respond(bundle, view)


@route("/{resource_type}", "GET")
async def search_type(request: Request, resource_type: str) -> Response:
    check_type(resource_type)
    path = f"{base_url(request)}/{resource_type}"
    return await _search(request, [resource_type], _pairs(request), path)


@route("/{resource_type}/_search", "POST")
async def search_form(request: Request, resource_type: str) -> Response:
    """``POST Type/_search`` with form-encoded parameters (added to any in the URL)."""
    check_type(resource_type)
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise FhirError(415, "not-supported", "_search takes application/x-www-form-urlencoded")
    raw = await read_body(request, _limit(request))
    form = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
    path = f"{base_url(request)}/{resource_type}"
    return await _search(request, [resource_type], _pairs(request) + form, path)


# --- type level ---------------------------------------------------------------------------------


@route("/{resource_type}", "POST")
async def create(request: Request, resource_type: str) -> Response:
    check_type(resource_type)
    view = view_of(request)
    condition = request.headers.get("if-none-exist")
    resource = await _resource_from_body(request)
    result = await run_in_threadpool(
        _service(request).create, resource_type, resource, condition, access(request)
    )
    return _written(request, result, view)


@route("/{resource_type}", "PUT")
async def conditional_update(request: Request, resource_type: str) -> Response:
    check_type(resource_type)
    view = view_of(request)
    query = _condition(request)
    if_match = parse_etag(request.headers.get("if-match"), "If-Match")
    resource = await _resource_from_body(request)
    result = await run_in_threadpool(
        _service(request).conditional_update,
        resource_type,
        query,
        resource,
        if_match,
        access(request),
    )
    return _written(request, result, view)


@route("/{resource_type}", "DELETE")
async def conditional_delete(request: Request, resource_type: str) -> Response:
    check_type(resource_type)
    query = _condition(request)
    deleted = await run_in_threadpool(
        _service(request).conditional_delete, resource_type, query, access(request)
    )
    if deleted is None:
        return Response(status_code=204)
    message = f"Deleted {resource_type}/{deleted.id}"
    return respond(information(message), view_of(request), 200, {"ETag": etag(deleted.version_id)})


@route("/{resource_type}", "PATCH")
async def conditional_patch(request: Request, resource_type: str) -> Response:
    check_type(resource_type)
    view = view_of(request)
    query = _condition(request)
    operations = await _patch_body(request)
    result = await run_in_threadpool(
        _service(request).conditional_patch, resource_type, query, operations, access(request)
    )
    return _written(request, result, view)


def _condition(request: Request) -> str:
    query = request.url.query
    if not query:
        raise FhirError(400, "required", "A conditional interaction needs search criteria")
    return query


async def _patch_body(request: Request) -> Any:
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media != "application/json-patch+json":
        raise FhirError(
            415,
            "not-supported",
            f"PATCH takes application/json-patch+json, not '{media[:60] or 'none'}'",
        )
    return jsonio.loads(await read_body(request, _limit(request)))


@route("/{resource_type}/_history", "GET")
async def history_type(request: Request, resource_type: str) -> Response:
    check_type(resource_type)
    return await _history(request, resource_type, None)


# --- instance level -----------------------------------------------------------------------------


@route("/{resource_type}/{resource_id}", "GET")
async def read(request: Request, resource_type: str, resource_id: str) -> Response:
    check_id(resource_id)
    stored = await _service(request).read_async(resource_type, resource_id, access(request))
    return _show(request, stored)


@route("/{resource_type}/{resource_id}", "PUT")
async def update(request: Request, resource_type: str, resource_id: str) -> Response:
    check_type(resource_type)
    check_id(resource_id)
    view = view_of(request)
    if_match = parse_etag(request.headers.get("if-match"), "If-Match")
    resource = await _resource_from_body(request)
    result = await run_in_threadpool(
        _service(request).update, resource_type, resource_id, resource, if_match, access(request)
    )
    return _written(request, result, view)


@route("/{resource_type}/{resource_id}", "PATCH")
async def patch(request: Request, resource_type: str, resource_id: str) -> Response:
    check_type(resource_type)
    check_id(resource_id)
    view = view_of(request)
    operations = await _patch_body(request)
    if_match = parse_etag(request.headers.get("if-match"), "If-Match")
    result = await run_in_threadpool(
        _service(request).patch, resource_type, resource_id, operations, if_match, access(request)
    )
    return _written(request, result, view)


@route("/{resource_type}/{resource_id}", "DELETE")
async def delete(request: Request, resource_type: str, resource_id: str) -> Response:
    check_type(resource_type)
    if_match = parse_etag(request.headers.get("if-match"), "If-Match")
    deleted = await run_in_threadpool(
        _service(request).delete, resource_type, resource_id, if_match, access(request)
    )
    headers = {} if deleted is None else {"ETag": etag(deleted.version_id)}
    if prefer(request, "return") == "operationoutcome" or deleted is not None:
        message = (
            f"Deleted {resource_type}/{resource_id}"
            if deleted is not None
            else f"{resource_type}/{resource_id} was already deleted"
        )
        return respond(information(message), view_of(request), 200, headers)
    return Response(status_code=204, headers=headers)


@route("/{resource_type}/{resource_id}/_history", "GET")
async def history_instance(request: Request, resource_type: str, resource_id: str) -> Response:
    check_type(resource_type)
    check_id(resource_id)
    # An unknown resource has no history: 404 rather than an empty Bundle.
    await run_in_threadpool(_exists, _service(request), resource_type, resource_id, access(request))
    return await _history(request, resource_type, resource_id)


def _exists(
    service: ResourceService, resource_type: str, resource_id: str, client: Access | None
) -> None:
    try:
        service.read(resource_type, resource_id, client)
    except FhirError as exc:
        if exc.status != 410:
            raise


@route("/{resource_type}/{resource_id}/_history/{version_id}", "GET")
async def vread(
    request: Request, resource_type: str, resource_id: str, version_id: str
) -> Response:
    check_id(resource_id)
    if not version_id.isdigit():
        raise FhirError(400, "value", f"Invalid version id '{version_id[:40]}'")
    stored = await run_in_threadpool(
        _service(request).vread, resource_type, resource_id, int(version_id), access(request)
    )
    return _show(request, stored)


async def _history(
    request: Request, resource_type: str | None, resource_id: str | None
) -> Response:
    view = view_of(request)
    params = request.query_params
    settings = request.app.state.settings
    count = _int_param(params.get("_count"), "_count", settings.default_page_size)
    count = max(0, min(count, settings.max_page_size))
    since: datetime | None = None
    if params.get("_since"):
        since = parse_instant(params["_since"], "_since")
    cursor = _int_param(params.get("_cursor"), "_cursor", 0) or None
    page = await run_in_threadpool(
        _service(request).history,
        access(request),
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        before_cursor=cursor,
        count=count,
        with_total=resource_id is not None,
    )
    base = base_url(request)
    path = "/".join(p for p in (base, resource_type, resource_id, "_history") if p)
    links = {"self": str(request.url)}
    if page.next_cursor is not None:
        query = f"_count={count}&_cursor={page.next_cursor}"
        if since is not None:
            query += f"&_since={instant(since)}"
        links["next"] = f"{path}?{query}"
    return respond(bundles.history_bundle(page, links, base, view), view)


def _int_param(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit():
        raise FhirError(
            400, "value", f"Invalid {name} value '{value[:40]}': not a non-negative integer"
        )
    return int(value)


@route("/{compartment_type}/{compartment_id}/{resource_type}", "GET")
async def search_compartment(
    request: Request, compartment_type: str, compartment_id: str, resource_type: str
) -> Response:
    """``GET /fhir/Patient/{id}/Observation``: search within a patient's compartment."""
    check_type(compartment_type)
    check_id(compartment_id)
    check_type(resource_type)
    path = f"{base_url(request)}/{compartment_type}/{compartment_id}/{resource_type}"
    owner = (compartment_type, compartment_id)
    return await _search(request, [resource_type], _pairs(request), path, owner)


# --- the hot routes -----------------------------------------------------------------------------

#: Paths whose parameters can only be a resource type and a FHIR id (``[A-Za-z0-9\-.]{1,64}``),
#: so that ``$operation``, ``_history``, ``_search``, ``metadata`` and the AuditEvent routes can
#: never match them. Composed *first*, they spare the commonest interactions a scan of every
#: route before them (~50 regular expressions per read, measured at ~8% of a read's CPU); any
#: path they refuse (a malformed id, say) goes on to the full table and its specific error.
HOT_PATHS = {
    "/{resource_type}/{resource_id}": "/{resource_type:fhir_type}/{resource_id:fhir_id}",
    "/{resource_type}": "/{resource_type:fhir_type}",
}
_HOT = {("/{resource_type}/{resource_id}", "GET"), ("/{resource_type}/{resource_id}", "PUT")}
_HOT |= {("/{resource_type}", "GET"), ("/{resource_type}", "POST")}


class _FhirType(StringConvertor):
    regex = "(?!AuditEvent(?:/|$))[A-Z][A-Za-z]{1,63}"


class _FhirId(StringConvertor):
    regex = r"[A-Za-z0-9\-.]{1,64}"


register_url_convertor("fhir_type", _FhirType())
register_url_convertor("fhir_id", _FhirId())


def hot_routes() -> list[tuple[str, str, Callable[[Request], Awaitable[Response]]]]:
    """The read, update, search and create routes, on strict paths (see ``HOT_PATHS``)."""
    return [(HOT_PATHS[path], method, fn) for path, method, fn in ROUTES if (path, method) in _HOT]

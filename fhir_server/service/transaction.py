"""Batch and transaction Bundles (http://hl7.org/fhir/R4/http.html#transaction).

Entries are dispatched through the same ``Unit`` operations as single REST interactions; a
transaction runs them all in one database transaction, a batch gives each entry its own.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fhir_server.access.policy import Access
from fhir_server.fhir.outcomes import FhirError, Issue, operation_outcome
from fhir_server.fhir.schema import validate_structure
from fhir_server.service.resources import ResourceService, Unit, WriteResult, new_id
from fhir_server.service.search import SearchResult
from fhir_server.service.validation import check_id, check_type, validate_resource
from fhir_server.storage.repository import StoredVersion

#: Spec processing order: DELETE, POST, PUT/PATCH, then GET/HEAD.
_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}

_STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass
class Entry:
    """One parsed Bundle.entry.request, with its resource."""

    index: int
    method: str
    resource_type: str
    resource_id: str | None
    version_id: int | None
    history: bool
    resource: Any
    full_url: str | None
    if_match: int | None
    if_none_match: str | None
    assigned_id: str | None = None
    #: Search criteria of a conditional PUT/PATCH/DELETE url or of ifNoneExist (POST).
    condition: str | None = None
    #: Set when a conditional create found its match: nothing is created.
    existing: StoredVersion | None = None


@dataclass
class EntryResult:
    """What one entry produced: a status line, the version written or read, or an outcome."""

    status: int
    stored: StoredVersion | None = None
    history: list[StoredVersion] | None = None
    outcome: dict[str, Any] | None = None
    #: A read (GET entry): the resource is always returned, whatever Prefer says.
    read: bool = False
    #: A search (GET entry with criteria): returned as a searchset Bundle.
    search: SearchResult | None = None
    #: Warnings of the rules that ran in the bundle's unit (see ``WriteResult.warnings``).
    warnings: list[str] | None = None

    def own_warnings(self) -> list[str]:
        """The warnings about this entry's resource (they start with ``Type/id``)."""
        if not self.warnings or self.stored is None:
            return []
        prefix = f"{self.stored.resource_type}/{self.stored.id} "
        return [w for w in self.warnings if w.startswith(prefix)]

    @property
    def status_line(self) -> str:
        return _STATUS_TEXT.get(self.status, str(self.status))


def _entry_error(index: int, exc: FhirError) -> FhirError:
    prefix = f"Bundle.entry[{index}]"
    issues = [
        Issue(
            i.code,
            f"{prefix}: {i.diagnostics}",
            i.severity,
            tuple(_prefix_expression(prefix, e) for e in i.expression),
        )
        for i in exc.issues
    ]
    return FhirError.from_issues(exc.status, issues)


def _prefix_expression(prefix: str, expression: str) -> str:
    head, dot, rest = expression.partition(".")
    if head[:1].isupper():
        return f"{prefix}.resource" + (dot + rest if dot else "")
    return f"{prefix}.request.{expression}"


def _parse_request_url(url: str, index: int) -> tuple[str, str | None, int | None, bool, str]:
    parts = urlsplit(url)
    path = parts.path.strip("/")
    segments = path.split("/") if path else []
    # Absolute URLs name the server's base; only the last FHIR-shaped part matters.
    for i, seg in enumerate(segments):
        if seg[:1].isupper():
            segments = segments[i:]
            break
    if not segments:
        raise FhirError(
            400, "invalid", f"Bundle.entry[{index}].request.url '{url[:80]}' names no resource type"
        )
    rtype = segments[0]
    rid = segments[1] if len(segments) > 1 else None
    history = len(segments) > 2 and segments[2] == "_history"
    version = None
    if history and len(segments) > 3:
        if not segments[3].isdigit():
            raise FhirError(400, "value", f"Bundle.entry[{index}].request.url has a bad version id")
        version = int(segments[3])
        history = False
    if len(segments) > 4 or (len(segments) >= 3 and segments[2] != "_history"):
        raise FhirError(
            400, "invalid", f"Bundle.entry[{index}].request.url '{url[:80]}' is not supported"
        )
    return rtype, rid, version, history, parts.query


def _parse_etag(value: Any, index: int) -> int | None:
    if value is None:
        return None
    text = str(value).strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise FhirError(
            400, "value", f"Bundle.entry[{index}].request.ifMatch '{value}' is malformed"
        )
    return int(text)


def parse_entries(bundle: Any, max_entries: int = 10_000) -> tuple[str, list[Entry]]:
    """Check the Bundle envelope and parse every entry's request; raise on any fault."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError(
            400, "invalid", "POST to the base URL takes a Bundle of type batch or transaction"
        )
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise FhirError(
            400,
            "invalid",
            f"Bundle.type must be batch or transaction, not {kind!r}",
            ("Bundle.type",),
        )
    raw_entries = bundle.get("entry", []) or []
    if isinstance(raw_entries, list) and len(raw_entries) > max_entries:
        raise FhirError(
            413, "too-long", f"Bundle has {len(raw_entries)} entries; the limit is {max_entries}"
        )
    envelope = {
        **bundle,
        "entry": [
            {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
            for e in bundle.get("entry", []) or []
        ],
    }
    issues = validate_structure(envelope)
    if issues:
        raise FhirError.from_issues(400, issues[:50])
    entries = []
    for index, raw in enumerate(bundle.get("entry", []) or []):
        if not isinstance(raw, dict):
            raise FhirError(
                400,
                "structure",
                f"Bundle.entry[{index}] must be an object",
                (f"Bundle.entry[{index}]",),
            )
        request = raw.get("request")
        if not request:
            raise FhirError(
                400,
                "required",
                f"Bundle.entry[{index}].request is required in a {kind}",
                (f"Bundle.entry[{index}].request",),
            )
        method = request.get("method")
        url = request.get("url")
        if not method or not url:
            raise FhirError(400, "required", f"Bundle.entry[{index}].request needs method and url")
        rtype, rid, version, history, query = _parse_request_url(url, index)
        if query and method == "POST":
            raise FhirError(
                400,
                "invalid",
                f"Bundle.entry[{index}]: POST url takes no query; "
                "use ifNoneExist for a conditional create",
            )
        condition = query or request.get("ifNoneExist") or None
        entries.append(
            Entry(
                index,
                method,
                rtype,
                rid,
                version,
                history,
                raw.get("resource"),
                raw.get("fullUrl"),
                _parse_etag(request.get("ifMatch"), index),
                request.get("ifNoneMatch"),
                condition=condition,
            )
        )
    return kind, entries


def _check_entry(entry: Entry) -> None:
    check_type(entry.resource_type)
    if entry.resource_id is not None:
        check_id(entry.resource_id)
    if entry.method in ("POST", "PUT"):
        if entry.resource is None:
            raise FhirError(400, "required", f"{entry.method} needs a resource")
        validate_resource(entry.resource, entry.resource_type)
    if entry.method == "POST" and entry.resource_id is not None:
        raise FhirError(400, "invalid", "POST url must be the resource type only")
    if (
        entry.method in ("PUT", "PATCH", "DELETE")
        and entry.resource_id is None
        and (not entry.condition)
    ):
        raise FhirError(
            400, "invalid", f"{entry.method} url must name a resource id or search criteria"
        )
    if entry.method == "PUT" and entry.resource_id is not None:
        body_id = entry.resource.get("id")
        if body_id is not None and body_id != entry.resource_id:
            raise FhirError(400, "invalid", f"resource id '{body_id}' does not match url id")
    if entry.method == "PATCH" and not _patch_operations(entry.resource):
        raise FhirError(400, "invalid", "PATCH needs a Binary holding a JSON Patch document")


def _patch_operations(resource: Any) -> Any:
    """A JSON Patch travels in a bundle as a Binary (contentType application/json-patch+json)."""
    import base64

    from fhir_server.fhir import jsonio

    if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
        return None
    if "json-patch" not in str(resource.get("contentType", "")):
        return None
    try:
        return jsonio.loads(base64.b64decode(resource.get("data", ""), validate=True))
    except (ValueError, FhirError):
        return None


def _assign_ids(entries: list[Entry], base_url: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    seen: dict[tuple[str, str], int] = {}
    for e in entries:
        if e.method == "POST":
            e.assigned_id = e.existing.id if e.existing is not None else new_id()
        target_id = e.assigned_id or e.resource_id
        if target_id and e.method in ("POST", "PUT", "DELETE", "PATCH"):
            key = (e.resource_type, target_id)
            if key in seen:
                raise FhirError(
                    400,
                    "invalid",
                    f"Bundle.entry[{e.index}] and Bundle.entry[{seen[key]}] "
                    f"both change {e.resource_type}/{target_id}",
                )
            seen[key] = e.index
        if e.full_url and target_id and e.method in ("POST", "PUT"):
            local = f"{e.resource_type}/{target_id}"
            if e.full_url in mapping:
                raise FhirError(
                    400, "invalid", f"Bundle.entry[{e.index}]: duplicate fullUrl '{e.full_url}'"
                )
            mapping[e.full_url] = local
            if e.full_url.startswith(base_url.rstrip("/") + "/"):
                mapping[e.full_url] = local
    return mapping


def _resolve_condition(unit: Unit, e: Entry) -> None:
    """Turn a conditional entry into a plain one (spec: 0, 1 or many matches)."""
    if not e.condition or e.resource_id is not None or e.method in ("GET", "HEAD"):
        return
    what = f"Conditional {'create' if e.method == 'POST' else e.method.lower()}"
    match = unit.find_one(e.resource_type, e.condition, what)
    if e.method == "POST":
        e.existing = match
    elif match is not None:
        e.resource_id = match.id
    elif e.method == "PUT":
        body_id = e.resource.get("id") if isinstance(e.resource, dict) else None
        e.resource_id = body_id or new_id()
    elif e.method == "PATCH":
        raise FhirError(404, "not-found", f"No {e.resource_type} matches '{e.condition[:200]}'")


def _resolve_references(unit: Unit, value: Any, mapping: dict[str, str]) -> Any:
    """Rewrite bundle-local fullUrls and resolve conditional references ``Type?criteria``.

    Works in place (the resources were parsed for this request) and returns ``value``.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                if key == "reference" and _is_conditional(item):
                    value[key] = _conditional_reference(unit, item, mapping)
                elif item in mapping:
                    value[key] = mapping[item]
            elif isinstance(item, dict | list):
                _resolve_references(unit, item, mapping)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                if item in mapping:
                    value[index] = mapping[item]
            elif isinstance(item, dict | list):
                _resolve_references(unit, item, mapping)
    return value


def _is_conditional(reference: str) -> bool:
    head, sep, _ = reference.partition("?")
    return bool(sep) and head[:1].isupper() and "/" not in head


def _conditional_reference(unit: Unit, reference: str, cache: dict[str, str]) -> str:
    if reference in cache:
        return cache[reference]
    rtype, _, query = reference.partition("?")
    found = unit.search.matches(unit.conn, rtype, query, unit.access)
    if len(found) != 1:
        how = "no resource" if not found else "more than one resource"
        raise FhirError(
            412,
            "multiple-matches" if found else "not-found",
            f"Conditional reference '{reference[:200]}' matches {how}",
        )
    cache[reference] = f"{rtype}/{found[0].id}"
    return cache[reference]


def _run(unit: Unit, entry: Entry) -> EntryResult:
    rtype, rid = entry.resource_type, entry.resource_id
    if entry.method == "DELETE":
        if rid is None:  # conditional delete without a match
            return EntryResult(204)
        try:
            unit.check_visible_if_exists(rtype, rid)
            deleted = unit.delete(rtype, rid, entry.if_match)
        except FhirError as exc:
            if exc.status == 404:  # deleting what is not there changes nothing
                return EntryResult(204)
            raise
        return EntryResult(204 if deleted is None else 200, deleted)
    if entry.method == "PUT":
        assert rid is not None
        body = {**entry.resource, "id": rid}
        unit.check_visible_if_exists(rtype, rid)
        result = unit.update(body, rid, entry.if_match)
        return _written(unit, result)
    if entry.method == "PATCH":
        assert rid is not None
        unit.check_visible(rtype, rid)
        patched = unit.patch(rtype, rid, _patch_operations(entry.resource), entry.if_match)
        return _written(unit, patched)
    if entry.method in ("GET", "HEAD"):
        if rid is None:
            pairs = parse_qsl(entry.condition or "", keep_blank_values=True)
            found = unit.search.search([rtype], pairs, conn=unit.conn, access=unit.access)
            return EntryResult(200, search=found)
        unit.check_visible(rtype, rid)
        if entry.history:
            page = unit.history(resource_type=rtype, resource_id=rid, count=100)
            return EntryResult(200, history=page.entries)
        stored = (
            unit.vread(rtype, rid, entry.version_id) if entry.version_id else unit.read(rtype, rid)
        )
        return EntryResult(200, stored, read=True)
    raise FhirError(400, "not-supported", f"Unsupported request method '{entry.method}'")


def _written(unit: Unit, result: WriteResult) -> EntryResult:
    """A write's entry result; the unit's client must be able to see what it wrote."""
    unit.owe_visible(result.stored)
    return EntryResult(201 if result.created else 200, result.stored, warnings=result.warnings)


def _create_all(unit: Unit, entries: list[Entry]) -> list[EntryResult]:
    """Create every POST entry in one statement; conditional creates with a match return it."""
    fresh = [e for e in entries if e.existing is None]
    created = iter(unit.create_many([(e.resource, e.assigned_id or new_id()) for e in fresh]))
    return [
        EntryResult(200, e.existing) if e.existing is not None else _written(unit, next(created))
        for e in entries
    ]


def put_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A transaction that writes each resource under its own id (``PUT Type/id``): how
    seeds, fixtures and benchmarks load resources whose ids they chose."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }


def process(
    service: ResourceService,
    bundle: Any,
    base_url: str,
    max_entries: int = 10_000,
    access: Access | None = None,
    unit: Unit | None = None,
) -> tuple[str, list[EntryResult]]:
    """Run a batch or transaction; results are in the order of the request's entries.

    ``access``: each entry is restricted to what that client may see (docs/access.md).
    ``unit``: run a transaction inside the caller's unit (which commits it), e.g. after the
    caller matched the bundle's Patient in the same database transaction.
    """
    kind, entries = parse_entries(bundle, max_entries)
    if kind == "transaction":
        return kind, _transaction(service, entries, base_url, access, unit)
    if unit is not None:
        raise ValueError("a batch runs each entry in its own unit; pass no unit")
    return kind, _batch(service, entries, base_url, access)


def _transaction(
    service: ResourceService,
    entries: list[Entry],
    base_url: str,
    access: Access | None,
    joined: Unit | None = None,
) -> list[EntryResult]:
    for e in entries:
        try:
            _check_entry(e)
        except FhirError as exc:
            raise _entry_error(e.index, exc) from exc
    results: dict[int, EntryResult] = {}
    ordered = sorted(entries, key=lambda e: (_ORDER.get(e.method, 9), e.index))
    own = service.unit(access=access) if joined is None else contextlib.nullcontext(joined)
    with own as unit:
        for e in entries:
            try:
                _resolve_condition(unit, e)
            except FhirError as exc:
                raise _entry_error(e.index, exc) from exc
        mapping = _assign_ids(entries, base_url)
        for e in entries:
            if e.method in ("POST", "PUT") and e.resource is not None:
                try:
                    e.resource = _resolve_references(unit, e.resource, mapping)
                except FhirError as exc:
                    raise _entry_error(e.index, exc) from exc
        posts = [e for e in ordered if e.method == "POST"]
        puts = [e for e in ordered if e.method == "PUT"]
        for e in ordered:
            if e.method in ("POST", "PUT"):
                continue
            if _ORDER.get(e.method, 9) >= 2 and posts:
                _do_posts(unit, posts, results)
                posts = []
            if _ORDER.get(e.method, 9) >= 2 and puts:
                _do_puts(unit, puts, results)
                puts = []
            try:
                results[e.index] = _run(unit, e)
            except FhirError as exc:
                raise _entry_error(e.index, exc) from exc
        if posts:
            _do_posts(unit, posts, results)
        if puts:
            _do_puts(unit, puts, results)
    return [results[e.index] for e in entries]


def _do_puts(unit: Unit, puts: list[Entry], results: dict[int, EntryResult]) -> None:
    """All PUT entries with few statements; on a precondition failure, one by one to name the
    entry (the batch fails before it writes anything)."""
    items = [({**e.resource, "id": e.resource_id}, e.resource_id or "", e.if_match) for e in puts]
    for e in puts:
        try:
            unit.check_visible_if_exists(e.resource_type, e.resource_id or "")
        except FhirError as exc:
            raise _entry_error(e.index, exc) from exc
    try:
        written = unit.update_many(items)
    except FhirError:
        for e in puts:
            try:
                results[e.index] = _run(unit, e)
            except FhirError as exc:
                raise _entry_error(e.index, exc) from exc
        return
    for e, result in zip(puts, written, strict=True):
        results[e.index] = _written(unit, result)


def _do_posts(unit: Unit, posts: list[Entry], results: dict[int, EntryResult]) -> None:
    for e, result in zip(posts, _create_all(unit, posts), strict=True):
        results[e.index] = result


def _batch(
    service: ResourceService, entries: list[Entry], base_url: str, access: Access | None
) -> list[EntryResult]:
    results: dict[int, EntryResult] = {}
    valid = []
    for e in entries:
        try:
            _check_entry(e)
            valid.append(e)
        except FhirError as exc:
            results[e.index] = _failed(e.index, exc)
    for e in sorted(valid, key=lambda e: (_ORDER.get(e.method, 9), e.index)):
        try:
            with service.unit(write=e.method not in ("GET", "HEAD"), access=access) as unit:
                results[e.index] = _run_alone(unit, e)
        except FhirError as exc:
            results[e.index] = _failed(e.index, exc)
    return [results[e.index] for e in entries]


def _run_alone(unit: Unit, e: Entry) -> EntryResult:
    """A batch entry in its own transaction (batch entries may not refer to each other)."""
    _resolve_condition(unit, e)
    if e.method == "POST":
        if e.existing is not None:
            return EntryResult(200, e.existing)
        resource = _resolve_references(unit, e.resource, {})
        return _written(unit, unit.create(resource, new_id()))
    if e.method == "PUT":
        e.resource = _resolve_references(unit, e.resource, {})
    return _run(unit, e)


def _failed(index: int, exc: FhirError) -> EntryResult:
    return EntryResult(exc.status, outcome=operation_outcome(_entry_error(index, exc).issues))

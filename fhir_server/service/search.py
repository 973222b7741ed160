"""Search use cases: parse, check against the registry, run through storage, include.

Transport-neutral: the REST layer, conditional operations and bundle entries all call
``SearchService.search`` with query pairs, never SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from sqlalchemy import Connection, and_, or_

from fhir_server.access.policy import Access
from fhir_server.fhir.outcomes import FhirError
from fhir_server.fhir.schema import resource_types
from fhir_server.search.compartment import patient_compartment
from fhir_server.search.registry import Registry
from fhir_server.search.request import RESULT_PARAMS, Filter, Include, SearchRequest, parse
from fhir_server.service.validation import check_type
from fhir_server.storage import access_sql, search_repo
from fhir_server.storage.database import Database
from fhir_server.storage.repository import StoredVersion
from fhir_server.storage.search_query import (
    Condition,
    QueryBuilder,
    Scope,
    SortKey,
    UnknownParameter,
)
from fhir_server.storage.search_repo import Visible

#: Parameters every search accepts that are not in the registry.
_COMMON = frozenset({"_id", "_lastUpdated"})
_UNSUPPORTED = frozenset({"_text", "_content", "_query", "_filter", "_list"})
#: _include/_revinclude :iterate stops here and says so in the outcome entry.
MAX_INCLUDE_ROUNDS = 10


@dataclass
class SearchResult:
    matches: list[StoredVersion]
    included: list[StoredVersion]
    total: int | None
    next_cursor: str | None
    prev_cursor: str | None
    #: The query pairs that were applied, for the self link (others were ignored).
    used: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    request: SearchRequest | None = None


@dataclass
class _Run:
    """A parsed search ready to run: conditions, order, page size and what to report."""

    req: SearchRequest
    conditions: list[Condition]
    sort: list[SortKey]
    count: int
    used: list[tuple[str, str]]
    warnings: list[str]
    visible: Visible | None


def _combine(
    mode: str,
    scope: Scope,
    direct: list[Condition],
    nested: list[Condition],
    inside: QueryBuilder,
    visible: Visible | None,
) -> list[Condition]:
    """The WHERE of a search: the resources of ``scope`` (``_contained=false``), the
    resources of any type that contain ones matching (``true``), or either (``both``)."""
    types = scope.types
    if mode == "false":
        conditions = search_repo.base_conditions(types) + direct
        if visible is not None:
            conditions.append(visible(scope))
        return conditions
    containers = [inside.contains(scope), *nested]
    if mode == "true":
        found = and_(*containers)
    else:
        found = or_(and_(scope.table.c.res_type.in_(list(types)), *direct), and_(*containers))
    conditions = [scope.table.c.deleted.is_(False), found]
    if visible is not None:  # containers may be of any type
        conditions.append(visible(Scope(scope.table, tuple(sorted(resource_types())))))
    return conditions


def _visible(access: Access | None) -> Visible | None:
    """The client's access rule as a condition builder (None: unrestricted)."""
    if access is None:
        return None
    return lambda scope: access_sql.condition(scope, access)


class SearchService:
    def __init__(
        self,
        db: Database,
        registry: Registry,
        max_page_size: int = 1000,
        default_page_size: int = 20,
    ) -> None:
        self.db = db
        self.registry = registry
        self.max_page_size = max_page_size
        self.default_page_size = default_page_size
        #: Without _total, the first page of a larger result counts up to this many matches.
        self.default_count_cap = 1000

    def search(
        self,
        resource_types: Sequence[str],
        pairs: Sequence[tuple[str, str]],
        *,
        strict: bool = False,
        base_url: str = "",
        compartment: tuple[str, str] | None = None,
        conn: Connection | None = None,
        access: Access | None = None,
    ) -> SearchResult:
        """Run a search over one or more types; unknown parameters raise only when strict.

        ``conn`` runs it inside the caller's transaction (conditional operations); ``access``
        narrows matches, chains, ``_has`` and includes to what that client may see.
        """
        for rtype in resource_types:
            check_type(rtype)
        req = parse(resource_types, pairs)
        if req.problems:
            raise FhirError(400, "invalid", "; ".join(req.problems))
        used: list[tuple[str, str]] = []
        warnings: list[str] = []
        mode = req.contained or "false"
        if mode != "false" and req.contained_type == "contained":
            unsupported = "_containedType=contained is not supported: the containers are returned"
            if strict:
                raise FhirError(400, "not-supported", unsupported, ("_containedType",))
            warnings.append(unsupported)
        if mode != "false" and compartment is not None:
            raise FhirError(400, "not-supported", "_contained is not supported in a compartment")
        visible = _visible(access)
        builder = QueryBuilder(self.registry, base_url, visible)
        inside = QueryBuilder(self.registry, base_url, visible, contained=True)
        scope = search_repo.scope(resource_types)
        direct: list[Condition] = []  # on the resources themselves
        nested: list[Condition] = []  # on the resources their rows contain (_contained)
        for flt, (name, value) in zip(req.filters, _filter_pairs(pairs), strict=True):
            problem = self._unknown(resource_types, flt)
            if problem:
                if strict:
                    raise FhirError(400, "not-supported", problem, (flt.raw_name,))
                warnings.append(problem)
                continue
            try:
                if mode != "true":
                    direct.append(builder.condition(scope, flt))
                if mode != "false":
                    nested.append(inside.condition(scope, flt))
            except UnknownParameter as exc:
                if strict:
                    raise
                warnings.append(f"{exc.diagnostics}; ignored")
                continue
            used.append((name, value))
        conditions = _combine(mode, scope, direct, nested, inside, visible)
        if compartment is not None:
            conditions.append(self._compartment(builder, scope, compartment))
        sorter = inside if mode == "true" else builder
        sort = [sorter.sort_key(scope, code, desc) for code, desc in req.sort]
        count = self.default_page_size if req.count is None else req.count
        count = max(0, min(count, self.max_page_size))
        run = _Run(req, conditions, sort, count, used, warnings, visible)
        if conn is not None:
            return self._run(conn, run)
        with self.db.read() as own:
            return self._run(own, run)

    def _run(self, conn: Connection, run: _Run) -> SearchResult:
        req, conditions, sort, count = run.req, run.conditions, run.sort, run.count
        used, warnings = run.used, run.warnings
        if req.summary == "count" or count == 0:
            counted = search_repo.count(conn, conditions)
            return SearchResult([], [], counted, None, None, used, warnings, req)
        try:
            page = search_repo.page(conn, conditions, sort, count, req.page_token)
        except ValueError as exc:
            raise FhirError(400, "invalid", f"Invalid paging token: {exc}", ("_page",)) from exc
        total: int | None = None
        if req.page_token is None and page.next_cursor is None and req.total != "none":
            total = len(page.rows)  # everything is on this one page
        elif req.total == "accurate":
            total = search_repo.count(conn, conditions)
        elif req.total == "estimate":
            total = search_repo.estimate(conn, conditions)
        elif req.total is None and not req.page_token and not page.many:
            # Counting 100,000 matches costs more than the page: exact up to a cap, else absent
            # (as Medplum; clients that need it ask with _total=accurate). A page the index
            # walk filled (``many``) is left uncounted.
            total = search_repo.count(conn, conditions, cap=self.default_count_cap)
        extra = self._includes(conn, req, page.rows, warnings, run.visible)
        return SearchResult(
            page.rows, extra, total, page.next_cursor, page.prev_cursor, used, warnings, req
        )

    def matches(
        self, conn: Connection, resource_type: str, query: str, access: Access | None = None
    ) -> list[StoredVersion]:
        """Up to two matches of a conditional URL's query (enough to tell 0, 1 or many)."""
        pairs = parse_qsl(query, keep_blank_values=True)
        if not pairs:
            raise FhirError(400, "invalid", f"Conditional {resource_type} needs search criteria")
        criteria = [*pairs, ("_count", "2"), ("_total", "none")]
        return self.search([resource_type], criteria, strict=True, conn=conn, access=access).matches

    def _unknown(self, resource_types: Sequence[str], flt: Filter) -> str | None:
        if flt.has or flt.chain:
            return None  # checked while building, with a precise message
        if flt.code in _UNSUPPORTED:
            return f"Search parameter '{flt.code}' is not supported by this server; ignored"
        if flt.code in _COMMON:
            return None
        if all(self.registry.get(t, flt.code) is None for t in resource_types):
            return (
                f"Unknown search parameter '{flt.raw_name or flt.code}' for "
                f"{'/'.join(resource_types)}; ignored"
            )
        return None

    def _compartment(
        self, builder: QueryBuilder, scope: Scope, owner: tuple[str, str]
    ) -> Condition:
        owner_type, owner_id = owner
        if owner_type != "Patient":
            raise FhirError(400, "not-supported", f"Compartment {owner_type} is not supported")
        conds = []
        for rtype in scope.types:
            params = patient_compartment().get(rtype)
            if not params:
                raise FhirError(400, "not-supported", f"{rtype} is not in the Patient compartment")
            for code in params:
                flt = Filter(code, None, (f"Patient/{owner_id}",))
                conds.append(builder.condition(Scope(scope.table, (rtype,)), flt))
            if rtype == "Patient":
                conds.append(builder.condition(scope, Filter("_id", None, (owner_id,))))
        return or_(*conds)

    def _includes(
        self,
        conn: Connection,
        req: SearchRequest,
        matches: list[StoredVersion],
        warnings: list[str],
        visible: Visible | None,
    ) -> list[StoredVersion]:
        seen = {(m.resource_type, m.id) for m in matches}
        extra: list[StoredVersion] = []
        frontier = list(matches)
        for round_ in range(MAX_INCLUDE_ROUNDS):
            found: list[StoredVersion] = []
            for inc in req.includes:
                if round_ > 0 and not inc.iterate:
                    continue
                found += self._one_include(conn, inc, frontier, visible)
            new = [r for r in found if (r.resource_type, r.id) not in seen]
            for r in new:
                seen.add((r.resource_type, r.id))
            extra += new
            frontier = new
            if not new or not any(i.iterate for i in req.includes):
                break
        else:
            warnings.append(
                f"_include/_revinclude :iterate stopped after {MAX_INCLUDE_ROUNDS} rounds; "
                "further resources may be missing"
            )
        return extra

    def _one_include(
        self,
        conn: Connection,
        inc: Include,
        sources: list[StoredVersion],
        visible: Visible | None,
    ) -> list[StoredVersion]:
        if inc.reverse:
            if inc.source_type == "*" or inc.param == "*":
                params = None
            else:
                self._check_reference(inc.source_type, inc.param)
                params = [inc.param]
            if inc.source_type == "*":
                raise FhirError(400, "not-supported", "_revinclude=* is not supported")
            return search_repo.rev_included(conn, sources, inc.source_type, params, visible)
        of_type = [s for s in sources if inc.source_type in ("*", s.resource_type)]
        if not of_type:
            return []
        params = None if inc.param == "*" else [inc.param]
        if params:
            self._check_reference(inc.source_type, inc.param)
        types = sorted({s.resource_type for s in of_type})
        return search_repo.included(conn, of_type, params, inc.target_type, types, visible)

    def _check_reference(self, rtype: str, code: str) -> None:
        param = self.registry.get(rtype, code)
        if param is None or param.type != "reference":
            raise FhirError(
                400,
                "not-supported",
                f"'{rtype}:{code}' is not a reference search parameter",
                ("_include",),
            )


def _filter_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(n, v) for n, v in pairs if n.partition(":")[0] not in RESULT_PARAMS]

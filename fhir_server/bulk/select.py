"""Which resources an export reads: SQL conditions per type, read in keyset pages.

Reuses the search layer's query builder, so ``_typeFilter`` accepts exactly what search does
and the Patient compartment is the one ``GET Patient/{id}/Type`` uses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from urllib.parse import parse_qsl

from sqlalchemy import Connection, and_, or_

from fhir_server.access.policy import Access
from fhir_server.fhir.outcomes import FhirError
from fhir_server.search.compartment import patient_compartment
from fhir_server.search.registry import Registry
from fhir_server.search.request import RESULT_PARAMS, Filter, parse
from fhir_server.storage import access_sql, search_repo
from fhir_server.storage import repository as repo
from fhir_server.storage.database import Database
from fhir_server.storage.repository import StoredVersion
from fhir_server.storage.search_query import Condition, QueryBuilder


class Selector:
    """Builds the conditions of one type's export (since, type filters, compartment)."""

    def __init__(self, registry: Registry) -> None:
        self.builder = QueryBuilder(registry)

    def type_filter(self, rtype: str, queries: Sequence[str]) -> Condition | None:
        """``_typeFilter`` queries of one type, ORed; 400 for anything search would refuse."""
        if not queries:
            return None
        scope = search_repo.scope([rtype])
        ors = []
        for query in queries:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(name.partition(":")[0] in RESULT_PARAMS for name, _ in pairs):
                raise FhirError(
                    400, "invalid", f"_typeFilter '{query[:80]}' may only hold search criteria"
                )
            req = parse([rtype], pairs)
            if req.problems:
                raise FhirError(400, "invalid", "_typeFilter: " + "; ".join(req.problems))
            ors.append(and_(*(self.builder.condition(scope, flt) for flt in req.filters)))
        return or_(*ors)

    def compartment(self, rtype: str, patient_ids: Sequence[str]) -> Condition:
        """Resources of ``rtype`` in the compartment of any of ``patient_ids``."""
        scope = search_repo.scope([rtype])
        refs = tuple(f"Patient/{pid}" for pid in patient_ids)
        conds = [
            self.builder.condition(scope, Filter(code, None, refs))
            for code in patient_compartment().get(rtype, [])
        ]
        if rtype == "Patient":
            conds.append(search_repo.id_in(patient_ids))
        return or_(*conds)

    def conditions(
        self,
        rtype: str,
        since: datetime | None,
        type_filter: Condition | None,
        access: Access | None = None,
    ) -> list[Condition]:
        conds = search_repo.base_conditions([rtype])
        if access is not None:
            conds.append(access_sql.condition(search_repo.scope([rtype]), access))
        if since is not None:
            conds.append(search_repo.updated_after(since))
        if type_filter is not None:
            conds.append(type_filter)
        return conds


def pages(
    db: Database, conditions: Sequence[Condition], size: int
) -> Iterator[list[StoredVersion]]:
    """Matches in res_pk order, one read transaction per page: memory stays one page."""
    cursor: str | None = None
    while True:
        with db.read() as conn:
            page = search_repo.page(conn, conditions, [], size, cursor)
        if page.rows:
            yield page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def present_types(conn: Connection) -> set[str]:
    """Types with at least one current resource: the others need no query at all."""
    return repo.present_types(conn)

"""SQL of the access rules (``fhir_server/data/access-rules.yaml``, docs/access.md).

A rule is a condition on a resource-table alias, so the same rule narrows a search, its
chains and ``_has``, includes, history and export in the statement that reads them: paging
and totals count only what the client may see, and nothing is filtered after the fact.
Everything is derived from the search index tables, which are written in the same
transaction as the resources, so a new Coverage or booking takes effect with its commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import CompoundSelect, Select, and_, false, or_, select, true, tuple_, union

from fhir_server.access.policy import Access
from fhir_server.access.rules import Rules, rules
from fhir_server.search.compartment import patient_compartment
from fhir_server.storage.outbox import subscription_owners
from fhir_server.storage.schema import resources
from fhir_server.storage.search_query import Condition, Scope
from fhir_server.storage.search_tables import idx_reference, idx_token

_SR = "ServiceRequest"


def condition(scope: Scope, access: Access) -> Condition:
    """True for the rows of ``scope`` that ``access`` may see."""
    parts = branches(scope, access)
    if not parts:
        return false()
    return or_(*parts) if len(parts) > 1 else parts[0]


def branches(scope: Scope, access: Access) -> list[Condition]:
    """The rule as alternatives (a row is visible when one holds). A search ORs them; a check
    of a few rows runs each on its own, where PostgreSQL can follow indexes from the row
    instead of computing the client's whole visible set."""
    r = rules()
    parts: list[Condition] = []
    open_types = [t for t in scope.types if t in r.open_types]
    if open_types:
        parts.append(_typed(scope, open_types, true()))
    if "Subscription" in scope.types:  # a client sees the subscriptions it created
        owned = select(subscription_owners.c.subscription_id).where(
            subscription_owners.c.client_id == access.client_id
        )
        parts.append(_typed(scope, ["Subscription"], scope.table.c.res_id.in_(owned)))
    rest = [t for t in scope.types if t not in r.open_types and t != "Subscription"]
    if rest and access.value is not None:
        if access.kind == "insurer":
            parts += _in_patients(scope, rest, _insurer_patients(access.value, r))
        elif access.kind == "team":
            parts += _in_cases(scope, rest, _team_cases(access.value, r), r)
        elif access.kind == "ehr":
            parts += _in_cases(scope, rest, _ehr_cases(access.value, r), r)
    return parts


def _typed(scope: Scope, types: Sequence[str], cond: Condition) -> Condition:
    """``cond`` for rows of ``types`` (no type test when the scope holds one type only)."""
    if len(scope.types) == 1:
        return cond
    return and_(scope.table.c.res_type.in_(types), cond)


# --- insurer: patients whose Coverage names the insurer -------------------------------------


def _insurer_patients(ik: str, r: Rules) -> Select[Any]:
    system = r.payor_identifier_system
    tok = idx_token.alias("acc_org_ik")
    org = resources.alias("acc_org")
    orgs = select(org.c.res_id).where(
        org.c.res_type == "Organization",
        org.c.res_pk.in_(
            select(tok.c.res_pk).where(
                tok.c.res_type == "Organization",
                tok.c.param == "identifier",
                tok.c.system == system,
                tok.c.code == ik,
            )
        ),
    )
    # Two selects, not one with OR: each can use its index, and the planner estimates them.
    named = idx_reference.alias("acc_payor_ik")
    by_identifier = select(named.c.res_pk).where(
        named.c.res_type == "Coverage",
        named.c.param == "payor",
        named.c.identifier_value == ik,
        named.c.identifier_system == system,
    )
    pointed = idx_reference.alias("acc_payor_org")
    by_organization = select(pointed.c.res_pk).where(
        pointed.c.res_type == "Coverage",
        pointed.c.param == "payor",
        pointed.c.target_type == "Organization",
        pointed.c.target_id.in_(orgs),
    )
    coverages = union(by_identifier, by_organization)
    ben = idx_reference.alias("acc_beneficiary")
    return select(ben.c.target_id).where(
        ben.c.res_type == "Coverage",
        ben.c.param == "beneficiary",
        ben.c.target_type == "Patient",
        ben.c.res_pk.in_(coverages),
    )


def _in_patients(scope: Scope, types: Sequence[str], patients: Select[Any]) -> list[Condition]:
    """Rows in the Patient compartment of one of ``patients``."""
    conds: list[Condition] = []
    if "Patient" in types:
        conds.append(_typed(scope, ["Patient"], scope.table.c.res_id.in_(patients)))
    pairs = [(t, p) for t in types for p in patient_compartment().get(t, ())]
    if pairs:
        link = idx_reference.alias("acc_link")
        linked = select(link.c.res_pk).where(
            link.c.target_type == "Patient",
            link.c.target_id.in_(patients),
            tuple_(link.c.res_type, link.c.param).in_(pairs),
        )
        conds.append(scope.pk.in_(linked))
    return conds


# --- team and ehr: cases (ServiceRequests) and what belongs to them -------------------------


def _ids_of(pks: Select[Any] | CompoundSelect[Any]) -> Select[Any]:
    row = resources.alias("acc_sr")
    return select(row.c.res_id).where(row.c.res_type == _SR, row.c.res_pk.in_(pks))


def _team_cases(team: str, r: Rules) -> Select[Any]:
    """ServiceRequests with a live Appointment naming the team."""
    actor = idx_reference.alias("acc_actor")
    status = idx_token.alias("acc_status")
    based = idx_reference.alias("acc_booked")
    booked = select(actor.c.res_pk).where(
        actor.c.res_type == "Appointment",
        actor.c.param == "actor",
        actor.c.target_type.in_(r.team_actor_types),
        actor.c.target_id == team,
    )
    inactive = select(status.c.res_pk).where(
        status.c.res_type == "Appointment",
        status.c.param == "status",
        status.c.code.in_(r.team_inactive_status),
    )
    return select(based.c.target_id).where(
        based.c.res_type == "Appointment",
        based.c.param == r.based_on_param,
        based.c.target_type == _SR,
        based.c.res_pk.in_(booked),
        based.c.res_pk.not_in(inactive),
    )


def _ehr_cases(org: str, r: Rules) -> Select[Any]:
    """ServiceRequests the hospital requested, or whose surgery proposal it performs."""
    req = idx_reference.alias("acc_requester")
    requested = select(req.c.res_pk).where(
        req.c.res_type == _SR,
        req.c.param == "requester",
        req.c.target_type.in_(r.ehr_requester_types),
        req.c.target_id == org,
    )
    perf = idx_reference.alias("acc_performer")
    proposals = select(perf.c.res_pk).where(
        perf.c.res_type == _SR,
        perf.c.param == "performer",
        perf.c.target_type == "Organization",
        perf.c.target_id == org,
    )
    link = idx_reference.alias("acc_proposal")
    carrying = select(link.c.res_pk).where(
        link.c.res_type == _SR,
        link.c.param == r.ehr_proposal_link_param,
        link.c.target_type == _SR,
        link.c.target_id.in_(_ids_of(proposals)),
    )
    return _ids_of(union(requested, carrying))


def _in_cases(scope: Scope, types: Sequence[str], cases: Select[Any], r: Rules) -> list[Condition]:
    """The cases themselves, what is based on them, and what they reference as members."""
    conds: list[Condition] = []
    if _SR in types:
        conds.append(_typed(scope, [_SR], scope.table.c.res_id.in_(cases)))
    based = idx_reference.alias("acc_based")
    based_on = select(based.c.res_pk).where(
        based.c.res_type.in_(types),
        based.c.param == r.based_on_param,
        based.c.target_type == _SR,
        based.c.target_id.in_(cases),
    )
    conds.append(scope.pk.in_(based_on))
    case_row = resources.alias("acc_case")
    member = idx_reference.alias("acc_member")
    case_pks = select(case_row.c.res_pk).where(
        case_row.c.res_type == _SR, case_row.c.res_id.in_(cases)
    )
    members = [
        member.c.res_type == _SR,
        member.c.param.in_(r.member_params),
        member.c.target_type.in_(types),
        member.c.res_pk.in_(case_pks),
    ]
    if len(scope.types) == 1:
        conds.append(scope.table.c.res_id.in_(select(member.c.target_id).where(*members)))
    else:
        key = tuple_(scope.table.c.res_type, scope.table.c.res_id)
        conds.append(key.in_(select(member.c.target_type, member.c.target_id).where(*members)))
    return conds


def reachable_types() -> frozenset[str]:
    """Every type a restricted client can see any resource of (system history, export)."""
    return rules().open_types | {"Subscription"} | frozenset(patient_compartment())


def visible(conn: Any, access: Access, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (type, id) the client may see: one statement per type, each branch of
    the rule on its own (``branches``), so a read costs a few index probes."""
    found: set[tuple[str, str]] = set()
    by_type: dict[str, list[str]] = {}
    for rtype, rid in keys:
        by_type.setdefault(rtype, []).append(rid)
    for rtype, ids in by_type.items():
        table = resources.alias("acc_target")
        scope = Scope(table, (rtype,))
        selects = [
            select(table.c.res_id).where(table.c.res_type == rtype, table.c.res_id.in_(ids), branch)
            for branch in branches(scope, access)
        ]
        if selects:
            stmt = union(*selects) if len(selects) > 1 else selects[0]
            found.update((rtype, rid) for rid in conn.execute(stmt).scalars())
    return found


def is_open(rtype: str) -> bool:
    """Directory and conformance types every authorised client sees."""
    return rtype in rules().open_types

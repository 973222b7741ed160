"""Compare, then write: referrals into resources through the service layer, idempotently.

A chunk of referrals is one unit of work (``ResourceService.unit()``): shared resources are
found by identifier, the rest by their derived ids, each in one search per type; what the rows
ask for is compared with what is stored and only differences are validated and written. So a
re-import writes nothing and creates no versions, and a corrected row updates its resources.
Should the chunk fail to commit, every referral is retried alone in its own unit, so one bad
referral never takes the others with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters import identity as patients
from adapters.insurer import resources
from adapters.insurer.digest import DIGEST_SYSTEM, row_digest, shared_identities, with_digest
from adapters.insurer.layout import Layout, Target
from adapters.insurer.merge import Content, Merge, fill, replace
from adapters.insurer.referral import Referral
from adapters.insurer.report import Outcome, RowIssue
from adapters.insurer.resources import Identity, Links
from adapters.insurer.shared import Shared
from fhir_server.fhir.outcomes import FhirError
from fhir_server.service.resources import ResourceService, Unit
from fhir_server.service.validation import validate_resource

log = logging.getLogger(__name__)

Key = tuple[str, str]

#: Ids per ``_id`` search: PostgreSQL still probes the (type, id) index for lists this long
#: (with 500 it scanned every resource of the type: measured 10 ms vs 107 ms at 84k resources).
_ID_BATCH = 100
#: Values per ``identifier`` search. The search service matches a list of tokens by filtering
#: every token of the system, so such a search costs as much as the table is large; above
#: ``_SLOW_PER_VALUE`` seconds per value the import switches to one value per search, which
#: uses the index (~1 ms each, whatever the size).
_IDENTIFIER_BATCH = 200
_SLOW_PER_VALUE = 0.001
#: Rows whose referrals ``split_unchanged`` holds in memory at a time.
_DIGEST_SLICE = 1000
#: Resources created before the first ``refresh_statistics``; then each time they double.
_FIRST_ANALYZE = 2000
_SERVER_META = ("versionId", "lastUpdated")
_RETIRED = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "entered-in-error",
        }
    ]
}


@dataclass
class RowResult:
    referral: Referral
    outcome: Outcome
    issues: list[RowIssue] = field(default_factory=list)


@dataclass
class ChunkResult:
    rows: list[RowResult]
    created: int = 0
    updated: int = 0


@dataclass
class _Stored:
    """A stored resource: content without id and meta, its version and its client meta."""

    content: Content
    version: int
    meta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Conflict:
    ids: tuple[str, ...]


@dataclass
class _Planned:
    key: Key
    ours: Content
    merge: Merge


@dataclass
class _Plan:
    """What one row asks for, with its :func:`row_digest`, which the referral keeps in
    ``meta.tag``: a row whose digest is unchanged needs no further look-ups."""

    row: Referral
    items: list[_Planned]
    digest: str
    referral: Key


class Writer:
    """Writes chunks of referrals for one import; remembers shared resources between chunks."""

    def __init__(self, service: ResourceService, layout: Layout, shared: Shared) -> None:
        self.service = service
        self.layout = layout
        self.shared = shared
        #: Committed state of organisations and practitioners (few, named by many rows).
        self._known: dict[Key, _Stored] = {}
        self._ids: dict[Identity, str] = {}
        self.failures: list[str] = []
        #: Set once a list search by identifier proved slower than one search per value.
        self.single_identifier_searches = False
        #: Seconds per phase over all chunks: lookup, plan, validate, write, commit.
        self.timings: dict[str, float] = {}
        #: Resources this writer created, and the count at which statistics are refreshed.
        self.created = 0
        self._analyze_at = _FIRST_ANALYZE
        #: False: leave statistics to another writer of the same import (parallel workers).
        self.keep_statistics = True

    def _clock(self, phase: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - since
        return now

    def write(self, rows: list[Referral]) -> ChunkResult:
        result = self._write_chunk(rows)
        self._keep_statistics(result.created)
        return result

    def _keep_statistics(self, created: int) -> None:
        """Refresh the planner's statistics as the import grows the tables (PostgreSQL).

        A store that had few Patients when last analysed plans the next identifier look-up
        as a nested loop over every Patient: measured 25 ms for 3 KVNRs among 300 Patients,
        0.5 s per list of 200 at 1,000. Refreshing whenever the resources created double
        costs a few ANALYZEs per file (~0.1-0.3 s each) and keeps look-ups on the index.
        """
        self.created += created
        if not self.keep_statistics or self.created < self._analyze_at:
            return
        self._analyze_at = 2 * self.created
        started = time.perf_counter()
        try:
            self.service.refresh_statistics()
        except Exception as exc:  # only the speed of later look-ups depends on it
            log.warning("refreshing statistics failed (%s); continuing without", exc)
            self.keep_statistics = False
        self._clock("analyze", started)

    def _write_chunk(self, rows: list[Referral]) -> ChunkResult:
        try:
            return self._write(rows, tolerant=False)
        except Exception as exc:  # the whole unit rolled back; isolate the culprit
            log.warning("unit of %d referrals failed (%s); retrying one by one", len(rows), exc)
            self.failures.append(f"{type(exc).__name__}: {exc}"[:500])
            self._known.clear()
            self._ids.clear()
            total = ChunkResult([])
            for r in rows:
                one = self._write_alone(r)
                total.rows += one.rows
                total.created += one.created
                total.updated += one.updated
            return total

    def write_shared(self, rows: list[Referral]) -> tuple[int, int]:
        """Write the Organizations and Practitioners these rows name, in one unit, before the
        rows themselves: worker processes then find them stored and unchanged instead of
        racing to create the same ones (docs/insurer-adapter.md, "Worker processes").

        Best effort: a resource that fails validation or names a conflict is left for the
        rows, which report it; a failing unit only costs the time. Returns (created, updated).
        """
        identities = {i for r in rows for i in shared_identities(r) if i.resource_type != "Patient"}
        if not identities:
            return 0, 0
        try:
            with self.service.unit() as unit:
                chunk = _Chunk(self, unit, tolerant=False)
                written = chunk.run_shared(identities)
        except Exception as exc:  # the rows write them instead (and report what fails)
            log.warning("writing the shared resources first failed (%s); rows write them", exc)
            return 0, 0
        self._known.update(chunk.shared_state())
        self._ids.update(
            {i: rid for i, rid in chunk.ids.items() if (i.resource_type, rid) in self._known}
        )
        return written

    def split_unchanged(self, rows: list[Referral]) -> tuple[list[RowResult], list[Referral]]:
        """Rows whose stored referral carries their digest (nothing to do), and the others,
        read in one transaction: a re-import then forks no workers and writes nothing."""
        same: list[RowResult] = []
        other: list[Referral] = []
        with self.service.unit(write=False) as unit:
            for start in range(0, len(rows), _DIGEST_SLICE):
                part = rows[start : start + _DIGEST_SLICE]
                chunk = _Chunk(self, unit, tolerant=False)
                chunk._load({_referral_key(r) for r in part})
                for r in part:
                    digest = row_digest(r, self.shared, self.layout)
                    if chunk._digest(_referral_key(r)) == digest:
                        same.append(RowResult(r, "unchanged"))
                    else:
                        other.append(r)
        return same, other

    def _write_alone(self, r: Referral) -> ChunkResult:
        """One referral in its own unit; once more if its Patient appeared meanwhile (the
        second unit finds it by KVNR and merges instead of overwriting it)."""
        for attempt in range(2):
            try:
                return self._write([r], tolerant=True)
            except _PatientAppeared as exc:
                if attempt:
                    return ChunkResult([_failed(r, exc)])
            except Exception as exc:
                return ChunkResult([_failed(r, exc)])
        raise AssertionError("unreachable")

    def _write(self, rows: list[Referral], tolerant: bool) -> ChunkResult:
        with self.service.unit() as unit:
            chunk = _Chunk(self, unit, tolerant)
            result = chunk.run(rows)
            started = time.perf_counter()
        self._clock("commit", started)
        self._known.update(chunk.shared_state())
        self._ids.update(
            {i: rid for i, rid in chunk.ids.items() if (i.resource_type, rid) in self._known}
        )
        return result


class _PatientAppeared(Exception):
    """A Patient this unit was creating was stored by someone else meanwhile (e.g. a clinic's
    message for the same KVNR): writing ours would overwrite theirs."""


def _failed(r: Referral, exc: Exception) -> RowResult:
    reason = exc.issues[0].diagnostics if isinstance(exc, FhirError) else str(exc)
    issue = RowIssue(r.row, r.line, r.referral_id, "-", "", f"could not be stored: {reason}"[:1000])
    return RowResult(r, "rejected", [issue])


class _Chunk:
    """One unit of work: what is stored, what the rows want, and the difference to write."""

    def __init__(self, writer: Writer, unit: Unit, tolerant: bool) -> None:
        self.writer = writer
        self.unit = unit
        #: Create through ``update``, which copes with an id taken meanwhile or deleted.
        self.tolerant = tolerant
        self.ids: dict[Identity, str] = {}
        self.conflicts: dict[Identity, _Conflict] = {}
        #: Stored state as read (None: absent); then the state each accepted row leaves.
        self.stored: dict[Key, _Stored | None] = dict(writer._known)
        self.state: dict[Key, Content | None] = {k: v.content for k, v in writer._known.items()}
        self.pending: dict[Key, Content] = {}
        #: Digest of the row each written referral came from (its meta.tag).
        self.digests: dict[Key, str] = {}

    def shared_state(self) -> dict[Key, _Stored]:
        """Organisations and practitioners as this unit left them (once it has committed)."""
        state: dict[Key, _Stored] = {}
        for key, before in self.stored.items():
            if key[0] not in ("Organization", "Practitioner"):
                continue
            if key in self.pending:
                meta = before.meta if before else {}
                version = (before.version if before else 0) + 1
                state[key] = _Stored(self.pending[key], version, meta)
            elif before is not None:
                state[key] = before
        for key, content in self.pending.items():
            if key[0] in ("Organization", "Practitioner") and key not in state:
                state[key] = _Stored(content, 1, {})
        return state

    def run(self, rows: list[Referral]) -> ChunkResult:
        """Skip rows whose digest matches their stored referral; resolve, plan and compare
        the rest; write the differences."""
        clock = self.writer._clock
        started = time.perf_counter()
        digests = [row_digest(r, self.writer.shared, self.writer.layout) for r in rows]
        self._load({_referral_key(r) for r in rows})
        results: list[RowResult | None] = [None] * len(rows)
        changed: list[int] = []
        for index, (r, digest) in enumerate(zip(rows, digests, strict=True)):
            if self._digest(_referral_key(r)) == digest:
                results[index] = RowResult(r, "unchanged")
            else:
                changed.append(index)
        started = clock("lookup", started)
        self._resolve({i for index in changed for i in shared_identities(rows[index])})
        started = clock("lookup", started)
        todo: list[tuple[int, _Plan]] = []
        for index in changed:
            plan = self._plan(rows[index], digests[index])
            if isinstance(plan, RowResult):
                results[index] = plan
            else:
                todo.append((index, plan))
        started = clock("plan", started)
        self._load({k for _, plan in todo for k in self._needed(plan)})
        self._load({k for _, plan in todo for k in self._retired(plan)})
        started = clock("lookup", started)
        for index, plan in todo:
            results[index] = self._apply(plan)
        started = clock("compare+validate", started)
        created, updated = self._flush()
        clock("write", started)
        return ChunkResult([r for r in results if r is not None], created, updated)

    def run_shared(self, identities: set[Identity]) -> tuple[int, int]:
        """Resolve, compare, validate and write shared resources alone (no rows)."""
        self._resolve(identities)
        for identity in identities:
            if identity in self.conflicts:
                continue
            rid = self.ids[identity]
            key = (identity.resource_type, rid)
            merge = replace if rid == identity.fallback_id else fill
            current = self.state.get(key)
            desired = merge(current, self.writer.shared.get(identity))
            if desired == current:
                continue
            try:
                validate_resource({**desired, "id": rid}, identity.resource_type)
            except FhirError:
                continue  # the rows naming it are rejected with the issues
            self.state[key] = desired
            self.pending[key] = desired
        return self._flush()

    def _digest(self, referral: Key) -> str | None:
        stored = self.stored.get(referral)
        if stored is None:
            return None
        for tag in stored.meta.get("tag", []):
            if tag.get("system") == DIGEST_SYSTEM:
                return str(tag.get("code"))
        return None

    def _needed(self, plan: _Plan) -> set[Key]:
        """What may be stored for a row: all of it once its referral exists; otherwise only
        what other referrals share: the Coverage, if its patient was found (a referral's own
        resources are written with it, a Coverage with its patient's first referral)."""
        if self.stored.get(plan.referral) is not None:
            return {p.key for p in plan.items}
        patient = ("Patient", self.ids[resources.patient_identity(plan.row.kvnr)])
        if self.stored.get(patient) is None:
            return set()
        return {p.key for p in plan.items if p.key[0] == "Coverage"}

    # -- reading -------------------------------------------------------------------------

    def _resolve(self, identities: set[Identity]) -> None:
        """Find shared resources by business identifier (one search per type and system)."""
        todo: dict[tuple[str, str], list[str]] = {}
        for identity in identities:
            if identity in self.writer._ids:
                self.ids[identity] = self.writer._ids[identity]
            else:
                todo.setdefault((identity.resource_type, identity.system), []).append(
                    identity.value
                )
        for (rtype, system), values in todo.items():
            single = self.writer.single_identifier_searches
            for batch in _batches(sorted(values), 1 if single else _IDENTIFIER_BATCH):
                found: dict[str, list[Any]] = {v: [] for v in batch}
                query = ",".join(f"{system}|{v}" for v in batch)
                started = time.perf_counter()
                matches = self._search(rtype, [("identifier", query)])
                if not single and len(batch) > 1:
                    per_value = (time.perf_counter() - started) / len(batch)
                    if per_value > _SLOW_PER_VALUE:
                        single = self.writer.single_identifier_searches = self._single_pays(
                            rtype, f"{system}|{batch[0]}", per_value
                        )
                for match in matches:
                    assert match.content is not None
                    content = orjson.loads(match.content)
                    for ident in content.get("identifier", []):
                        value = ident.get("value")
                        if ident.get("system") == system and value in found:
                            found[value].append((match, content))
                for value, matches in found.items():
                    identity = Identity(rtype, system, value)
                    distinct = {m.id: (m, c) for m, c in matches}
                    if len(distinct) > 1:
                        self.conflicts[identity] = _Conflict(tuple(sorted(distinct)))
                    elif distinct:
                        ((rid, (match, content)),) = distinct.items()
                        self.ids[identity] = rid
                        self._remember((rtype, rid), content, match.version_id)
                    else:
                        self.ids[identity] = identity.fallback_id

    def _single_pays(self, rtype: str, token: str, per_value: float) -> bool:
        """A list search looked slow: switch to one search per value only if one such search
        takes less than half the list's time per value. Wall time alone misleads on a busy
        machine (both get slow, and single searches cost ~0.7 ms each even when idle)."""
        started = time.perf_counter()
        self._search(rtype, [("identifier", token)])
        return time.perf_counter() - started < per_value / 2

    def _load(self, keys: set[Key]) -> None:
        by_type: dict[str, list[str]] = {}
        for rtype, rid in keys - self.stored.keys():
            by_type.setdefault(rtype, []).append(rid)
        for rtype, ids in by_type.items():
            for batch in _batches(sorted(ids), _ID_BATCH):
                for match in self._search(rtype, [("_id", ",".join(batch))]):
                    assert match.content is not None
                    content = orjson.loads(match.content)
                    self._remember((rtype, match.id), content, match.version_id)
                for rid in batch:
                    self.stored.setdefault((rtype, rid), None)
                    self.state.setdefault((rtype, rid), None)

    def _search(self, rtype: str, pairs: list[tuple[str, str]]) -> list[Any]:
        pairs = [*pairs, ("_count", "1000"), ("_total", "none")]
        return self.unit.search.search([rtype], pairs, strict=True, conn=self.unit.conn).matches

    def _remember(self, key: Key, content: Content, version: int) -> None:
        meta = {k: v for k, v in content.get("meta", {}).items() if k not in _SERVER_META}
        plain = {k: v for k, v in content.items() if k not in ("id", "meta")}
        self.stored[key] = _Stored(plain, version, meta)
        self.state[key] = plain

    # -- planning ------------------------------------------------------------------------

    def _plan(self, r: Referral, digest: str) -> _Plan | RowResult:
        issues = [
            self._conflict_issue(r, identity, target)
            for identity, target in _identities_with_targets(r)
            if identity in self.conflicts
        ]
        if issues:
            return RowResult(r, "rejected", issues)
        shared = self.writer.shared
        layout = self.writer.layout
        patient = resources.patient_identity(r.kvnr)
        insurer = resources.organization_identity(r.insurer_ik)
        hospital = resources.organization_identity(r.hospital_ik) if r.hospital_ik else None
        surgeon = resources.practitioner_identity(r.surgeon_lanr) if r.surgeon_lanr else None
        links = Links(
            patient=self.ids[patient],
            insurer=self.ids[insurer],
            insurer_name=shared.get(insurer).get("name", r.insurer_name),
            coverage=resources.coverage_id(r.insurer_ik, r.kvnr),
            hospital=self.ids[hospital] if hospital else None,
            surgeon=self.ids[surgeon] if surgeon else None,
        )
        plan = [
            _Planned(("Patient", links.patient), shared.get(patient), patients.merge_from_insurer)
        ]
        for identity in (insurer, hospital, surgeon):
            if identity is not None:
                rid = self.ids[identity]
                owned = rid == identity.fallback_id
                plan.append(
                    _Planned(
                        (identity.resource_type, rid),
                        shared.get(identity),
                        replace if owned else fill,
                    )
                )
        plan.append(_Planned(("Coverage", links.coverage), resources.coverage(r, links), replace))
        for code in r.diagnoses:
            content = resources.condition(r, code, links, layout.codes.icd10gm)
            plan.append(_Planned(("Condition", resources.condition_id(r, code)), content, replace))
        plan.append(
            _Planned(
                ("ServiceRequest", resources.proposal_id(r)),
                resources.proposal(r, links, layout.codes.ops),
                replace,
            )
        )
        plan.append(
            _Planned(
                ("ServiceRequest", resources.referral_request_id(r)),
                resources.referral_request(r, links),
                replace,
            )
        )
        consent = resources.consent(r, links)
        if consent is not None:
            plan.append(_Planned(("Consent", resources.consent_id(r)), consent, replace))
        return _Plan(r, plan, digest, _referral_key(r))

    def _conflict_issue(self, r: Referral, identity: Identity, target: Target) -> RowIssue:
        ids = self.conflicts[identity].ids
        column = self.writer.layout.column_of(target) or target.value
        return RowIssue(
            r.row,
            r.line,
            r.referral_id,
            column,
            identity.value,
            f"{len(ids)} {identity.resource_type} resources already carry this identifier "
            f"({', '.join(ids[:5])}); merge them before importing",
        )

    def _retired(self, plan: _Plan) -> set[Key]:
        """Conditions a stored version of this referral gave as reasons and this row drops."""
        r = plan.row
        stored = self.state.get(plan.referral)
        if not stored:
            return set()
        before = {ref.get("reference", "") for ref in stored.get("reasonReference", [])}
        now = {f"Condition/{resources.condition_id(r, c)}" for c in r.diagnoses}
        return {("Condition", ref.split("/", 1)[1]) for ref in before - now if "/" in ref}

    # -- applying ------------------------------------------------------------------------

    def _apply(self, plan: _Plan) -> RowResult:
        r = plan.row
        conflict = self._identity_conflict(plan)
        if conflict is not None:
            return RowResult(r, "rejected", [conflict])
        changes: dict[Key, Content] = {}
        for p in plan.items:
            current = self.state.get(p.key)
            desired = p.merge(current, p.ours)
            if desired != current:
                changes[p.key] = desired
        for key in self._retired(plan):
            current = self.state.get(key)
            if current is not None:
                retired = {k: v for k, v in current.items() if k != "clinicalStatus"}
                retired["verificationStatus"] = _RETIRED
                if retired != current:
                    changes[key] = retired
        issues = []
        for (rtype, rid), content in changes.items():
            try:
                validate_resource({**content, "id": rid}, rtype)
            except FhirError as exc:
                for i in exc.issues[:5]:
                    where = ", ".join(i.expression) or rtype
                    issues.append(RowIssue(r.row, r.line, r.referral_id, where, "", i.diagnostics))
        if issues:
            return RowResult(r, "rejected", issues)
        is_new = self.state.get(plan.referral) is None
        if plan.referral in changes:
            self.digests[plan.referral] = plan.digest
        for key, content in changes.items():
            self.state[key] = content
            self.pending[key] = content
        if is_new:
            return RowResult(r, "imported")
        return RowResult(r, "updated" if changes else "unchanged")

    def _identity_conflict(self, plan: _Plan) -> RowIssue | None:
        """A stored Patient with the row's KVNR but another birth date is only this person
        when the insurer referred it before (``identity.covers``: its Coverage for the KVNR
        names the Patient): then the row corrects the birth date. Otherwise it may be someone
        else whom a clinic recorded under this KVNR; nothing is merged (``adapters.identity``,
        docs/insurer-adapter.md)."""
        r = plan.row
        patient = plan.items[0]
        stored = self.stored.get(patient.key)
        if stored is None:
            return None
        theirs = patients.other_birth_date(stored.content, patient.ours)
        if theirs is None:
            return None
        coverage = self.state.get(("Coverage", resources.coverage_id(r.insurer_ik, r.kvnr)))
        reference = f"Patient/{patient.key[1]}"
        if patients.covers(coverage, reference, {r.kvnr}):
            return None
        column = self.writer.layout.column_of(Target.BIRTH_DATE) or Target.BIRTH_DATE.value
        return RowIssue(
            r.row,
            r.line,
            r.referral_id,
            column,
            str(patient.ours.get("birthDate")),
            f"{reference} has KVNR {r.kvnr} but birth date {theirs}; not merged: check the "
            "KVNR or correct the stored patient before importing",
        )

    def _flush(self) -> tuple[int, int]:
        """Write what changed: new resources in one statement, changed ones guarded by the
        version read (If-Match), so a concurrent change fails the unit instead of being lost."""
        creates: list[tuple[Content, str]] = []
        updated = 0
        for (rtype, rid), content in self.pending.items():
            before = self.stored.get((rtype, rid))
            meta = with_digest(before.meta if before else {}, self.digests.get((rtype, rid)))
            body = {**content, "meta": meta} if meta else content
            if before is None:
                creates.append((body, rid))
                continue
            self.unit.update(body, rid, if_match=before.version)
            updated += 1
        if self.tolerant:
            for content, rid in creates:
                written = self.unit.update(content, rid)
                if not written.created and content.get("resourceType") == "Patient":
                    raise _PatientAppeared(f"Patient/{rid} was stored meanwhile; not overwritten")
        elif creates:
            self.unit.create_many(creates)
        return len(creates), updated


def _referral_key(r: Referral) -> Key:
    return ("ServiceRequest", resources.referral_request_id(r))


def _batches(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _identities_with_targets(r: Referral) -> list[tuple[Identity, Target]]:
    found = [
        (resources.patient_identity(r.kvnr), Target.KVNR),
        (resources.organization_identity(r.insurer_ik), Target.INSURER_IK),
    ]
    if r.hospital_ik:
        found.append((resources.organization_identity(r.hospital_ik), Target.HOSPITAL_IK))
    if r.surgeon_lanr:
        found.append((resources.practitioner_identity(r.surgeon_lanr), Target.SURGEON_LANR))
    return found

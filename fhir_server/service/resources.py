"""The only read/write API for resources: REST, bundles, adapters and the pathway all use it."""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jsonpatch
from starlette.concurrency import run_in_threadpool

from fhir_server.access.policy import Access
from fhir_server.access.rules import rules
from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError, gone, not_found
from fhir_server.search.contained import index_values
from fhir_server.search.program import add_program_parameters
from fhir_server.search.registry import Registry
from fhir_server.service.clock import instant, now
from fhir_server.service.hooks import MAX_HOOK_DEPTH, AfterHook, Hooks
from fhir_server.service.hooks import default as default_hooks
from fhir_server.service.search import SearchResult, SearchService
from fhir_server.service.validation import check_id, check_type, validate_resource
from fhir_server.storage import access_sql, search_index
from fhir_server.storage import repository as repo
from fhir_server.storage.database import Database
from fhir_server.storage.fast_read import AsyncReader
from fhir_server.storage.repository import HistoryPage, NewVersion, StoredVersion
from fhir_server.storage.search_query import Scope


@dataclass(frozen=True, slots=True)
class WriteResult:
    stored: StoredVersion
    created: bool
    #: Warnings of the rules that ran in the same unit (filled when it finishes, before commit),
    #: e.g. a referral kept unbooked because no Slot was free.
    warnings: list[str] = field(default_factory=list)


def new_id() -> str:
    return str(uuid.uuid4())


def stamp(
    resource: dict[str, Any], resource_id: str, version: int, when: datetime
) -> dict[str, Any]:
    """The client's resource with server-owned id and meta in front, exactly as stored."""
    client_meta = resource.get("meta") or {}
    meta = {"versionId": str(version), "lastUpdated": instant(when)}
    meta.update((k, v) for k, v in client_meta.items() if k not in ("versionId", "lastUpdated"))
    out: dict[str, Any] = {
        "resourceType": resource["resourceType"],
        "id": resource_id,
        "meta": meta,
    }
    for key, value in resource.items():
        if key not in out:
            out[key] = value
    return out


def _check_if_match(current: StoredVersion | None, if_match: int | None, what: str) -> None:
    if if_match is None:
        return
    have = None if current is None or current.deleted else current.version_id
    if have != if_match:
        raise FhirError(
            412,
            "conflict",
            f"{what}: If-Match version {if_match} does not match current version {have}",
        )


class Unit:
    """One database transaction: every write inside commits together or not at all."""

    def __init__(
        self,
        conn: Any,
        clock: Callable[[], datetime],
        registry: Registry,
        search: SearchService,
        hooks: Hooks | None = None,
        access: Access | None = None,
    ) -> None:
        self.conn = conn
        self.clock = clock
        self.registry = registry
        self.search = search
        self.hooks = hooks if hooks is not None else Hooks()
        #: SearchParameter resources written in this unit, registered once it commits.
        self.pending_parameters: list[dict[str, Any]] = []
        #: After-hooks of the versions written, run by ``finish`` before the commit.
        #: Each with its depth: 0 for the unit's own writes, n+1 for what a depth-n hook wrote.
        self.queued: deque[tuple[AfterHook, dict[str, Any], dict[str, Any] | None, int]] = deque()
        self._depth = -1  # the depth of the after-hook running now (-1: none)
        #: Warnings of rules that ran in this unit (e.g. a referral that could not be booked).
        self.warnings: list[str] = []
        #: Versions written, for the ``every`` hooks (only kept when there are any).
        self.written: list[dict[str, Any]] = []
        #: The client this unit works for (None: unrestricted). Only the client's own
        #: interactions are checked (``check_visible``, ``owe_visible``, conditional matches);
        #: the rules' hooks act for the server and see everything.
        self.access = access
        #: Resources the client wrote, to be within its access once the rules settled.
        self.owed: list[tuple[str, str]] = []

    def _before(
        self,
        resource: dict[str, Any],
        current: StoredVersion | None,
        batch: Sequence[dict[str, Any]],
    ) -> dict[str, Any]:
        for hook in self.hooks.before.get(resource["resourceType"], ()):
            resource = hook(self, resource, current, batch)
        return resource

    def _after(self, doc: dict[str, Any], previous: StoredVersion | None) -> None:
        if self.hooks.every:
            self.written.append(doc)
        hooks = self.hooks.after.get(doc["resourceType"])
        if not hooks:
            return
        before = None
        if previous is not None and previous.content is not None and not previous.deleted:
            before = jsonio.loads_trusted(previous.content)
        depth = self._depth + 1
        self.queued.extend((hook, doc, before, depth) for hook in hooks)

    def finish(self) -> None:
        """Run the queued after-hooks (and what they queue) inside this transaction."""
        while self.queued:
            hook, doc, before, depth = self.queued.popleft()
            if depth > MAX_HOOK_DEPTH:  # a rule that keeps triggering itself: a server bug
                raise FhirError(500, "exception", "Pathway rules did not settle; nothing stored")
            self._depth = depth
            try:
                hook(self, doc, before)
            finally:
                self._depth = -1
        for doc in self.written:
            for every in self.hooks.every:
                every(self, doc)
        self.written.clear()
        self._settle_owed()

    def visible(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these resources the unit's client may see (all when unrestricted)."""
        if self.access is None:
            return set(keys)
        return access_sql.visible(self.conn, self.access, keys)

    def check_visible(self, resource_type: str, resource_id: str) -> None:
        """404 unless the unit's client may see the resource (as if it did not exist)."""
        if self.access is None:
            return
        key = (resource_type, resource_id)
        if key not in access_sql.visible(self.conn, self.access, [key]):
            raise not_found(resource_type, resource_id)

    def check_writable(self, resource_type: str) -> None:
        """403 for configuration only unrestricted clients change (access rules)."""
        if self.access is not None and resource_type in rules().admin_written_types:
            raise FhirError(
                403, "forbidden", f"{resource_type} resources are written by administrators"
            )

    def check_visible_if_exists(self, resource_type: str, resource_id: str) -> None:
        """``check_visible`` for an update or delete that may also create or do nothing."""
        if self.access is None:
            return
        self.check_writable(resource_type)
        current = repo.get_current(self.conn, resource_type, resource_id)
        if current is not None:
            self.check_visible(resource_type, resource_id)

    def owe_visible(self, stored: StoredVersion) -> None:
        """The client wrote this: it must be within its access when the unit ends."""
        if self.access is not None and not stored.deleted:
            self.check_writable(stored.resource_type)
            self.owed.append((stored.resource_type, stored.id))

    def _settle_owed(self) -> None:
        if self.access is None or not self.owed:
            return
        seen = access_sql.visible(self.conn, self.access, self.owed)
        outside = [k for k in self.owed if k not in seen]
        self.owed.clear()
        if outside:
            rtype, rid = outside[0]
            raise FhirError(
                403,
                "forbidden",
                f"{rtype}/{rid} would be outside what this client may access; nothing was stored",
            )

    def current(
        self, resource_type: str, resource_id: str, lock: bool = False
    ) -> StoredVersion | None:
        """The newest version, deleted or not (None: never existed); ``lock`` holds the row
        until the unit ends, so rules can re-check a state others may change concurrently."""
        return repo.get_current(self.conn, resource_type, resource_id, lock=lock)

    def current_many(
        self, keys: Sequence[tuple[str, str]], lock: bool = False
    ) -> dict[tuple[str, str], StoredVersion]:
        """``current`` for many (type, id) pairs in one statement."""
        return repo.get_current_many(self.conn, keys, lock=lock)

    def all_of_type(self, resource_type: str) -> list[StoredVersion]:
        """Every live resource of a small, definitional type (Schedules, teams)."""
        return repo.current_of_type(self.conn, resource_type)

    def find(self, resource_types: Sequence[str], pairs: Sequence[tuple[str, str]]) -> SearchResult:
        """A search inside this unit: it sees the unit's own writes and locks."""
        return self.search.search(resource_types, pairs, conn=self.conn)

    def savepoint(self) -> Any:
        """A nested transaction (``commit()``/``rollback()``): rolling it back releases the
        row locks taken inside it."""
        return self.conn.begin_nested()

    def read(self, resource_type: str, resource_id: str) -> StoredVersion:
        check_type(resource_type)
        current = repo.get_current(self.conn, resource_type, resource_id)
        if current is None:
            raise not_found(resource_type, resource_id)
        if current.deleted:
            raise gone(resource_type, resource_id, current.version_id)
        return current

    def vread(self, resource_type: str, resource_id: str, version_id: int) -> StoredVersion:
        check_type(resource_type)
        found = repo.get_version(self.conn, resource_type, resource_id, version_id)
        if found is None:
            if repo.get_current(self.conn, resource_type, resource_id) is None:
                raise not_found(resource_type, resource_id)
            raise FhirError(
                404,
                "not-found",
                f"Version {version_id} of {resource_type}/{resource_id} is not known",
            )
        if found.deleted:
            raise gone(resource_type, resource_id, version_id)
        return found

    def find_one(self, resource_type: str, query: str, what: str) -> StoredVersion | None:
        """The single match of a conditional URL; 412 when several match (spec rules)."""
        found = self.search.matches(self.conn, resource_type, query, self.access)
        if len(found) > 1:
            raise FhirError(
                412,
                "multiple-matches",
                f"{what}: '{resource_type}?{query[:200]}' matches more than one resource",
            )
        return found[0] if found else None

    def create_many(self, items: list[tuple[dict[str, Any], str]]) -> list[WriteResult]:
        """Create already-validated resources under the ids given, in one statement."""
        if self.hooks.before:
            batch = [res for res, _ in items]
            items = [(self._before(res, None, batch), rid) for res, rid in items]
        when = self.clock()
        stamped = [stamp(res, rid, 1, when) for res, rid in items]
        new = [
            NewVersion(doc["resourceType"], doc["id"], 1, when, "POST", jsonio.dumps(doc))
            for doc in stamped
        ]
        stored = repo.insert_new(self.conn, new)
        self._index([(s.res_pk, doc) for s, doc in zip(stored, stamped, strict=True)], fresh=True)
        for doc in stamped:
            self._after(doc, None)
        return [WriteResult(s, True, self.warnings) for s in stored]

    def _index(self, items: list[tuple[int, dict[str, Any]]], fresh: bool) -> None:
        """Keep the search index in step with the versions written, in the same transaction."""
        for _, doc in items:
            if doc["resourceType"] == "SearchParameter":
                _check_search_parameter(self.registry, doc)
                self.pending_parameters.append(doc)
        search_index.write(
            self.conn,
            [(pk, v) for pk, doc in items for v in index_values(doc, self.registry)],
            fresh=fresh,
        )

    def create(self, resource: dict[str, Any], resource_id: str | None = None) -> WriteResult:
        return self.create_many([(resource, resource_id or new_id())])[0]

    def update(
        self,
        resource: dict[str, Any],
        resource_id: str,
        if_match: int | None = None,
        method: str = "PUT",
    ) -> WriteResult:
        """Replace (or create under the client's id) an already-validated resource."""
        resource_type = resource["resourceType"]
        current = repo.get_current(self.conn, resource_type, resource_id, lock=True)
        _check_if_match(current, if_match, f"{resource_type}/{resource_id}")
        resource = self._before(resource, current, (resource,))
        when = self.clock()
        if current is None:
            doc = stamp(resource, resource_id, 1, when)
            new = NewVersion(resource_type, resource_id, 1, when, method, jsonio.dumps(doc))
            try:
                stored = repo.insert_new(self.conn, [new], may_exist=True)[0]
                self._index([(stored.res_pk, doc)], fresh=True)
                self._after(doc, None)
                return WriteResult(stored, True, self.warnings)
            except repo.IdTaken:
                current = repo.get_current(self.conn, resource_type, resource_id, lock=True)
                if current is None:
                    raise
        if _unchanged(current, resource, resource_id):
            return WriteResult(current, False, self.warnings)
        version = current.version_id + 1
        doc = stamp(resource, resource_id, version, when)
        new = NewVersion(resource_type, resource_id, version, when, method, jsonio.dumps(doc))
        stored = self._append(current, new)
        self._index([(stored.res_pk, doc)], fresh=False)
        self._after(doc, current)
        return WriteResult(stored, current.deleted, self.warnings)

    def update_many(self, items: list[tuple[dict[str, Any], str, int | None]]) -> list[WriteResult]:
        """``update`` for many already-validated resources with few statements (bundles)."""
        keys = [(res["resourceType"], rid) for res, rid, _ in items]
        currents = repo.get_current_many(self.conn, keys, lock=True)
        if self.hooks.before:
            batch = [res for res, _, _ in items]
            items = [
                (self._before(res, currents.get((res["resourceType"], rid)), batch), rid, m)
                for res, rid, m in items
            ]
        when = self.clock()
        results: list[WriteResult | None] = []
        creates: list[tuple[int, dict[str, Any]]] = []
        moves: list[tuple[int, StoredVersion, dict[str, Any]]] = []
        for index, (resource, rid, if_match) in enumerate(items):
            current = currents.get((resource["resourceType"], rid))
            _check_if_match(current, if_match, f"{resource['resourceType']}/{rid}")
            if current is None:
                creates.append((index, stamp(resource, rid, 1, when)))
                results.append(None)
            elif _unchanged(current, resource, rid):
                results.append(WriteResult(current, False, self.warnings))
            else:
                moves.append((index, current, stamp(resource, rid, current.version_id + 1, when)))
                results.append(None)
        if creates:
            new = [
                NewVersion(d["resourceType"], d["id"], 1, when, "PUT", jsonio.dumps(d))
                for _, d in creates
            ]
            try:
                stored = repo.insert_new(self.conn, new, may_exist=True)
            except repo.IdTaken:  # a concurrent creator: fall back to one at a time
                return [self.update(res, rid, if_match) for res, rid, if_match in items]
            self._index([(s.res_pk, d) for s, (_, d) in zip(stored, creates, strict=True)], True)
            for s, (index, doc) in zip(stored, creates, strict=True):
                results[index] = WriteResult(s, True, self.warnings)
                self._after(doc, None)
        if moves:
            pairs = [
                (
                    cur,
                    NewVersion(
                        d["resourceType"], d["id"], _version_of(d), when, "PUT", jsonio.dumps(d)
                    ),
                )
                for _, cur, d in moves
            ]
            try:
                moved = repo.append_versions(self.conn, pairs)
            except repo.VersionConflict as exc:
                raise FhirError(409, "conflict", str(exc)) from exc
            self._index([(s.res_pk, d) for s, (_, _, d) in zip(moved, moves, strict=True)], False)
            for s, (index, cur, doc) in zip(moved, moves, strict=True):
                results[index] = WriteResult(s, cur.deleted, self.warnings)
                self._after(doc, cur)
        return [r for r in results if r is not None]

    def patch(
        self,
        resource_type: str,
        resource_id: str,
        operations: Any,
        if_match: int | None = None,
    ) -> WriteResult:
        current = repo.get_current(self.conn, resource_type, resource_id, lock=True)
        if current is None:
            raise not_found(resource_type, resource_id)
        if current.deleted or current.content is None:
            raise gone(resource_type, resource_id, current.version_id)
        _check_if_match(current, if_match, f"{resource_type}/{resource_id}")
        patched = apply_json_patch(jsonio.loads_trusted(current.content), operations)
        if patched.get("id") != resource_id:
            raise FhirError(400, "invalid", "A patch must not change the resource id", ("id",))
        validate_resource(patched, resource_type)
        return self.update(patched, resource_id, None, method="PATCH")

    def delete(
        self, resource_type: str, resource_id: str, if_match: int | None = None
    ) -> StoredVersion | None:
        """Mark deleted as a new version; None when it was already deleted (nothing changes)."""
        check_type(resource_type)
        current = repo.get_current(self.conn, resource_type, resource_id, lock=True)
        if current is None:
            raise not_found(resource_type, resource_id)
        _check_if_match(current, if_match, f"{resource_type}/{resource_id}")
        if current.deleted:
            return None
        new = NewVersion(
            resource_type, resource_id, current.version_id + 1, self.clock(), "DELETE", None
        )
        stored = self._append(current, new)
        search_index.clear(self.conn, [stored.res_pk])
        return stored

    def _append(self, current: StoredVersion, new: NewVersion) -> StoredVersion:
        try:
            return repo.append_version(self.conn, current, new)
        except repo.VersionConflict as exc:
            raise FhirError(409, "conflict", str(exc)) from exc

    def history(self, **kwargs: Any) -> HistoryPage:
        """History; the client's access narrows type and system history to what it sees."""
        if self.access is not None and kwargs.get("resource_id") is None:
            access = self.access
            rtype = kwargs.get("resource_type")
            types = (rtype,) if rtype else tuple(sorted(access_sql.reachable_types()))
            kwargs["visible"] = lambda table: access_sql.condition(Scope(table, types), access)
        return repo.history(self.conn, **kwargs)


def _version_of(doc: dict[str, Any]) -> int:
    """The version a stamped document will be stored as."""
    return int(doc["meta"]["versionId"])


def _unchanged(current: StoredVersion, resource: dict[str, Any], resource_id: str) -> bool:
    """An update that would store the same content: no new version (as HAPI does), so that
    re-sent messages and re-imported files change nothing."""
    if current.deleted or current.content is None:
        return False
    same = stamp(resource, resource_id, current.version_id, current.last_updated)
    return jsonio.dumps(same) == current.content


def _check_search_parameter(registry: Registry, definition: dict[str, Any]) -> None:
    """A custom SearchParameter must compile before it is stored (it changes indexing)."""
    try:
        registry.copy().add(definition)
    except ValueError as exc:
        raise FhirError(
            422, "processing", f"SearchParameter cannot be used for search: {exc}"
        ) from exc


def apply_json_patch(document: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902 on a stored resource; every failure is the client's (400/422), never a 500."""
    if not isinstance(operations, list):
        raise FhirError(400, "structure", "A JSON Patch document must be a JSON array")
    try:
        patch = jsonpatch.JsonPatch(operations)
        result = patch.apply(document)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise FhirError(422, "processing", f"JSON Patch test failed: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise FhirError(422, "processing", f"JSON Patch could not be applied: {exc}") from exc
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:
        raise FhirError(400, "structure", f"Invalid JSON Patch document: {exc}") from exc
    if not isinstance(result, dict):
        raise FhirError(422, "processing", "JSON Patch result is not a resource")
    return result


class ResourceService:
    """Single interactions, each in its own transaction; ``unit()`` for several together."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime] = now,
        registry: Registry | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.registry = registry or Registry.standard()
        add_program_parameters(self.registry)
        #: Rules run inside each unit (the pathway's); the process default when not given.
        self.hooks = hooks if hooks is not None else default_hooks()
        self.search = SearchService(db, self.registry)
        #: Set by the app on PostgreSQL: reads then stay on the event loop.
        self.async_reader: AsyncReader | None = None

    async def read_async(
        self, resource_type: str, resource_id: str, access: Access | None = None
    ) -> StoredVersion:
        """``read`` for async callers: the event-loop reader where there is one."""
        if self.async_reader is None or access is not None:
            return await run_in_threadpool(self.read, resource_type, resource_id, access)
        check_type(resource_type)
        current = await self.async_reader.current(resource_type, resource_id)
        if current is None:
            raise not_found(resource_type, resource_id)
        if current.deleted:
            raise gone(resource_type, resource_id, current.version_id)
        return current

    @contextmanager
    def unit(
        self, write: bool = True, single: bool = False, access: Access | None = None
    ) -> Iterator[Unit]:
        """A transaction; ``single`` marks a read of one statement (no BEGIN/COMMIT);
        ``access`` is the client it works for (docs/access.md)."""
        with self.db.write() if write else self.db.read(single) as conn:
            unit = Unit(conn, self.clock, self.registry, self.search, self.hooks, access)
            yield unit
            unit.finish()
        for definition in unit.pending_parameters:
            self.registry.add(definition)

    def refresh_statistics(self) -> None:
        """After a bulk load: let the database plan searches over what was just written."""
        self.db.analyze()

    def load_custom_parameters(self) -> int:
        """Register the SearchParameter resources stored on this server (at start-up)."""
        with self.db.read() as conn:
            stored = repo.current_of_type(conn, "SearchParameter")
        count = 0
        for version in stored:
            if version.content is None:
                continue
            try:
                self.registry.add(jsonio.loads_trusted(version.content))
                count += 1
            except ValueError:
                continue
        return count

    def reindex(
        self,
        resource_type: str | None = None,
        batch: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Re-extract search index rows (after a SearchParameter was added), batch by batch.

        Each batch commits on its own, so a long reindex never holds one huge transaction and
        can simply be run again if interrupted.
        """
        if resource_type is not None:
            check_type(resource_type)
        done, after = 0, 0
        while True:
            with self.db.write() as conn:
                rows = repo.current_batch(conn, resource_type, after, batch)
                if not rows:
                    return done
                items = [
                    (r.res_pk, v)
                    for r in rows
                    if r.content is not None
                    for v in index_values(jsonio.loads_trusted(r.content), self.registry)
                ]
                search_index.write(conn, items, fresh=False)
            done += len(rows)
            after = rows[-1].res_pk
            if progress is not None:
                progress(done)

    def read(
        self, resource_type: str, resource_id: str, access: Access | None = None
    ) -> StoredVersion:
        check_type(resource_type)
        with self.unit(write=False, single=access is None, access=access) as u:
            u.check_visible(resource_type, resource_id)
            return u.read(resource_type, resource_id)

    def vread(
        self, resource_type: str, resource_id: str, version_id: int, access: Access | None = None
    ) -> StoredVersion:
        with self.unit(write=False, access=access) as u:
            u.check_visible(resource_type, resource_id)
            return u.vread(resource_type, resource_id, version_id)

    def create(
        self,
        resource_type: str,
        resource: Any,
        if_none_exist: str | None = None,
        access: Access | None = None,
    ) -> WriteResult:
        """Create; with ``if_none_exist`` an existing single match is returned instead."""
        check_type(resource_type)
        validate_resource(resource, resource_type)
        with self.unit(access=access) as u:
            if if_none_exist:
                existing = u.find_one(resource_type, if_none_exist, "Conditional create")
                if existing is not None:
                    return WriteResult(existing, False)
            return _owed(u, u.create(resource))

    def conditional_update(
        self,
        resource_type: str,
        query: str,
        resource: Any,
        if_match: int | None = None,
        access: Access | None = None,
    ) -> WriteResult:
        """``PUT Type?query``: update the one match, create when none, 412 when several."""
        check_type(resource_type)
        validate_resource(resource, resource_type)
        with self.unit(access=access) as u:
            existing = u.find_one(resource_type, query, "Conditional update")
            body_id = resource.get("id")
            if existing is None:
                if body_id is not None:
                    check_id(body_id)
                    u.check_visible_if_exists(resource_type, body_id)
                return _owed(u, u.update(resource, body_id or new_id(), if_match))
            if body_id is not None and body_id != existing.id:
                raise FhirError(
                    400, "invalid", f"Body id '{body_id}' differs from the match {existing.id}"
                )
            return _owed(u, u.update({**resource, "id": existing.id}, existing.id, if_match))

    def conditional_delete(
        self, resource_type: str, query: str, access: Access | None = None
    ) -> StoredVersion | None:
        """``DELETE Type?query``: delete the single match; nothing to do when none."""
        check_type(resource_type)
        with self.unit(access=access) as u:
            existing = u.find_one(resource_type, query, "Conditional delete")
            if existing is None:
                return None
            u.check_writable(resource_type)
            return u.delete(resource_type, existing.id)

    def conditional_patch(
        self, resource_type: str, query: str, operations: Any, access: Access | None = None
    ) -> WriteResult:
        check_type(resource_type)
        with self.unit(access=access) as u:
            existing = u.find_one(resource_type, query, "Conditional patch")
            if existing is None:
                raise FhirError(404, "not-found", f"No {resource_type} matches '{query[:200]}'")
            return _owed(u, u.patch(resource_type, existing.id, operations))

    def update(
        self,
        resource_type: str,
        resource_id: str,
        resource: Any,
        if_match: int | None = None,
        access: Access | None = None,
    ) -> WriteResult:
        check_type(resource_type)
        check_id(resource_id)
        validate_resource(resource, resource_type)
        body_id = resource.get("id")
        if body_id is None:
            raise FhirError(400, "required", "An update must carry the resource id", ("id",))
        if body_id != resource_id:
            raise FhirError(
                400,
                "invalid",
                f"Body id '{body_id}' does not match URL id '{resource_id}'",
                ("id",),
            )
        with self.unit(access=access) as u:
            u.check_visible_if_exists(resource_type, resource_id)
            return _owed(u, u.update(resource, resource_id, if_match))

    def patch(
        self,
        resource_type: str,
        resource_id: str,
        operations: Any,
        if_match: int | None = None,
        access: Access | None = None,
    ) -> WriteResult:
        check_type(resource_type)
        check_id(resource_id)
        with self.unit(access=access) as u:
            u.check_visible(resource_type, resource_id)
            return _owed(u, u.patch(resource_type, resource_id, operations, if_match))

    def delete(
        self,
        resource_type: str,
        resource_id: str,
        if_match: int | None = None,
        access: Access | None = None,
    ) -> StoredVersion | None:
        check_id(resource_id)
        with self.unit(access=access) as u:
            u.check_visible_if_exists(resource_type, resource_id)
            return u.delete(resource_type, resource_id, if_match)

    def history(self, access: Access | None = None, **kwargs: Any) -> HistoryPage:
        if kwargs.get("resource_type"):
            check_type(kwargs["resource_type"])
        with self.unit(write=False, access=access) as u:
            if kwargs.get("resource_id") is not None:
                u.check_visible(kwargs["resource_type"], kwargs["resource_id"])
            return u.history(**kwargs)


def _owed(unit: Unit, result: WriteResult) -> WriteResult:
    unit.owe_visible(result.stored)
    return result

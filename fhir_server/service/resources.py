"""The only read/write API for resources: REST, bundles, adapters and the pathway all use it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jsonpatch

from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError, gone, not_found
from fhir_server.service.clock import instant, now
from fhir_server.service.validation import check_id, check_type, validate_resource
from fhir_server.storage import repository as repo
from fhir_server.storage.database import Database
from fhir_server.storage.repository import HistoryPage, NewVersion, StoredVersion


@dataclass(frozen=True, slots=True)
class WriteResult:
    stored: StoredVersion
    created: bool


def new_id() -> str:
    return str(uuid.uuid4())


def render(resource: dict[str, Any], resource_id: str, version: int, when: datetime) -> bytes:
    """The exact bytes to store: the client's JSON with server-owned id and meta in front."""
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
    return jsonio.dumps(out)


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

    def __init__(self, conn: Any, clock: Callable[[], datetime]) -> None:
        self.conn = conn
        self.clock = clock

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

    def create_many(self, items: list[tuple[dict[str, Any], str]]) -> list[WriteResult]:
        """Create already-validated resources under the ids given, in one statement."""
        when = self.clock()
        new = [
            NewVersion(res["resourceType"], rid, 1, when, "POST", render(res, rid, 1, when))
            for res, rid in items
        ]
        return [WriteResult(s, True) for s in repo.insert_new(self.conn, new)]

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
        when = self.clock()
        if current is None:
            new = NewVersion(
                resource_type, resource_id, 1, when, method, render(resource, resource_id, 1, when)
            )
            try:
                return WriteResult(repo.insert_new(self.conn, [new])[0], True)
            except repo.IdTaken:
                current = repo.get_current(self.conn, resource_type, resource_id, lock=True)
                if current is None:
                    raise
        version = current.version_id + 1
        new = NewVersion(
            resource_type,
            resource_id,
            version,
            when,
            method,
            render(resource, resource_id, version, when),
        )
        return WriteResult(self._append(current, new), current.deleted)

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
        return self._append(current, new)

    def _append(self, current: StoredVersion, new: NewVersion) -> StoredVersion:
        try:
            return repo.append_version(self.conn, current, new)
        except repo.VersionConflict as exc:
            raise FhirError(409, "conflict", str(exc)) from exc

    def history(self, **kwargs: Any) -> HistoryPage:
        return repo.history(self.conn, **kwargs)


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

    def __init__(self, db: Database, clock: Callable[[], datetime] = now) -> None:
        self.db = db
        self.clock = clock

    @contextmanager
    def unit(self, write: bool = True) -> Iterator[Unit]:
        with self.db.write() if write else self.db.read() as conn:
            yield Unit(conn, self.clock)

    def read(self, resource_type: str, resource_id: str) -> StoredVersion:
        with self.unit(write=False) as u:
            return u.read(resource_type, resource_id)

    def vread(self, resource_type: str, resource_id: str, version_id: int) -> StoredVersion:
        with self.unit(write=False) as u:
            return u.vread(resource_type, resource_id, version_id)

    def create(self, resource_type: str, resource: Any) -> WriteResult:
        check_type(resource_type)
        validate_resource(resource, resource_type)
        with self.unit() as u:
            return u.create(resource)

    def update(
        self, resource_type: str, resource_id: str, resource: Any, if_match: int | None = None
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
        with self.unit() as u:
            return u.update(resource, resource_id, if_match)

    def patch(
        self, resource_type: str, resource_id: str, operations: Any, if_match: int | None = None
    ) -> WriteResult:
        check_type(resource_type)
        check_id(resource_id)
        with self.unit() as u:
            return u.patch(resource_type, resource_id, operations, if_match)

    def delete(
        self, resource_type: str, resource_id: str, if_match: int | None = None
    ) -> StoredVersion | None:
        check_id(resource_id)
        with self.unit() as u:
            return u.delete(resource_type, resource_id, if_match)

    def history(self, **kwargs: Any) -> HistoryPage:
        if kwargs.get("resource_type"):
            check_type(kwargs["resource_type"])
        with self.unit(write=False) as u:
            return u.history(**kwargs)

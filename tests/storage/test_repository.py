"""The storage layer on both stores: versions, history paging, conflicts."""

from __future__ import annotations

import uuid

import pytest

from fhir_server.fhir.outcomes import FhirError
from fhir_server.service.resources import ResourceService
from fhir_server.storage import migrate
from fhir_server.storage import repository as repo
from fhir_server.storage.database import Database


@pytest.fixture()
def service(db: Database) -> ResourceService:
    return ResourceService(db)


def _patient(**extra: object) -> dict[str, object]:
    return {"resourceType": "Patient", "gender": "female", **extra}


def test_database_is_at_the_head_revision(db: Database) -> None:
    assert migrate.current(db) == migrate.head()


def test_upgrade_twice_is_harmless(db: Database) -> None:
    migrate.upgrade(db)
    assert migrate.current(db) == migrate.head()


def test_create_then_read_returns_the_same_bytes(service: ResourceService) -> None:
    written = service.create("Patient", _patient()).stored
    read = service.read("Patient", written.id)
    assert read.content == written.content
    assert read.version_id == 1


def test_versions_are_consecutive_integers(service: ResourceService) -> None:
    rid = f"s-{uuid.uuid4().hex[:12]}"
    for n in range(3):
        service.update("Patient", rid, _patient(id=rid, birthDate=f"197{n}"))
    assert [service.vread("Patient", rid, v).version_id for v in (1, 2, 3)] == [1, 2, 3]


def test_stale_if_match_raises_412(service: ResourceService) -> None:
    rid = service.create("Patient", _patient()).stored.id
    service.update("Patient", rid, _patient(id=rid, gender="male"))
    with pytest.raises(FhirError) as err:
        service.update("Patient", rid, _patient(id=rid, gender="other"), if_match=1)
    assert err.value.status == 412


def test_append_version_refuses_a_moved_resource(db: Database, service: ResourceService) -> None:
    stored = service.create("Patient", _patient()).stored
    service.update("Patient", stored.id, _patient(id=stored.id, gender="male"))
    stale = repo.NewVersion("Patient", stored.id, 2, stored.last_updated, "PUT", b"{}")
    with db.write() as conn, pytest.raises(repo.VersionConflict):
        repo.append_version(conn, stored, stale)


def test_failed_unit_of_work_leaves_nothing_behind(service: ResourceService) -> None:
    rid = f"s-{uuid.uuid4().hex[:12]}"
    with pytest.raises(RuntimeError), service.unit() as unit:
        unit.update(_patient(id=rid), rid)
        raise RuntimeError("crash before commit")
    with pytest.raises(FhirError) as err:
        service.read("Patient", rid)
    assert err.value.status == 404


def test_history_pages_are_stable_under_concurrent_writes(service: ResourceService) -> None:
    rid = f"s-{uuid.uuid4().hex[:12]}"
    for n in range(5):
        service.update("Patient", rid, _patient(id=rid, birthDate=f"196{n}"))
    first = service.history(resource_type="Patient", resource_id=rid, count=2)
    service.update("Patient", rid, _patient(id=rid, birthDate="2000"))
    second = service.history(
        resource_type="Patient", resource_id=rid, count=2, before_cursor=first.next_cursor
    )
    assert [v.version_id for v in first.entries + second.entries] == [5, 4, 3, 2]


def test_update_with_the_same_content_keeps_the_version(service: ResourceService) -> None:
    rid = f"s-{uuid.uuid4().hex[:12]}"
    first = service.update("Patient", rid, _patient(id=rid)).stored
    again = service.update("Patient", rid, _patient(id=rid))
    assert (again.created, again.stored.version_id) == (False, first.version_id)


def test_delete_records_a_version_without_content(service: ResourceService) -> None:
    rid = service.create("Patient", _patient()).stored.id
    deleted = service.delete("Patient", rid)
    assert deleted is not None and deleted.deleted and deleted.content is None
    assert service.delete("Patient", rid) is None

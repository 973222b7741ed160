"""Imports split over worker processes (PostgreSQL): one merged report, the same guarantees."""

from __future__ import annotations

import os
import re
import time

import pytest

from adapters.insurer import parallel
from adapters.insurer.ingest import ingest
from adapters.insurer.reader import read as read_export
from adapters.insurer.referral import Referral, parse
from adapters.insurer.report import Report
from bench.insurer import export
from fhir_server.fhir.ids import KVNR_SYSTEM
from fhir_server.service.resources import ResourceService
from tests.adapters.insurer.helpers import Fresh, find, referral

TK_IK = "101575519"
ROWS = 24


def _export(fresh: Fresh, rows: int = ROWS) -> tuple[bytes, list[str]]:
    """A generated export (several rows per hospital and surgeon, some patients twice) with
    case numbers and KVNRs no other test uses; and its case numbers in row order."""
    text = export(rows).decode("utf-8")
    # Every third row names the KVNR of the row before: one patient, two referrals.
    lines = text.split("\r\n")
    for i in range(3, len(lines) - 1, 3):
        kvnr = lines[i - 1].split(";")[2]
        fields = lines[i].split(";")
        fields[2] = kvnr
        lines[i] = ";".join(fields)
    text = re.sub(r"\bTK-(\d{7})\b", lambda m: f"TK-2024-{m.group(1)}", "\r\n".join(lines))
    data = fresh(text.encode("utf-8"))
    cases = re.findall(r"\bTK-2024-[0-9A-F]{8}-\d+", data.decode("utf-8"))
    return data, cases


def _import(service: ResourceService, data: bytes) -> Report:
    return ingest(service, data, "tk", workers=2, batch_size=5)


def _expected_workers(service: ResourceService) -> int:
    return 1 if service.db.is_sqlite or not parallel.available() else 2


def test_workers_import_reimport_and_correct_with_one_report(service: ResourceService) -> None:
    fresh = Fresh()
    data, cases = _export(fresh)
    # A bad row (KVNR check digit) and a duplicate referral id: errors with their row numbers.
    lines = data.decode("utf-8").split("\r\n")
    bad = lines[5].split(";")
    bad[2] = bad[2][:-1] + str((int(bad[2][-1]) + 1) % 10)
    lines[5] = ";".join(bad)
    lines.insert(len(lines) - 1, lines[7])
    data = "\r\n".join(lines).encode("utf-8")

    first = _import(service, data)
    assert first.workers == _expected_workers(service)
    assert (first.rows, first.imported, first.rejected) == (ROWS + 1, ROWS - 1, 2)
    assert [(e.row, e.field) for e in first.errors] == [(5, "KVNR"), (ROWS + 1, "Fallnummer")]
    assert first.rows == first.imported + first.updated + first.unchanged + first.rejected
    for case in cases[:4] + cases[5:]:
        assert referral(service, TK_IK, case)["status"] in ("active", "on-hold")
    # One Patient per KVNR, also for the patient of rows 2 and 3.
    kvnr = data.decode("utf-8").split("\r\n")[2].split(";")[2]
    assert len(find(service, "Patient", f"identifier=http://fhir.de/sid/gkv/kvid-10|{kvnr}")) == 1

    again = _import(service, data)
    assert (again.imported, again.updated, again.unchanged, again.rejected) == (0, 0, ROWS - 1, 2)
    assert (again.resources_created, again.resources_updated) == (0, 0)

    corrected = data.replace(b";Dr. med. Operateur 10;", b";Dr. med. Operateurin 10;")
    lines = corrected.decode("utf-8").split("\r\n")
    row = lines[1].split(";")
    row[5] = "Berichtigt"  # family name of row 1
    lines[1] = ";".join(row)
    report = _import(service, "\r\n".join(lines).encode("utf-8"))
    assert report.rejected == 2
    assert report.updated >= 1
    assert report.rows == report.imported + report.updated + report.unchanged + report.rejected
    patient = referral(service, TK_IK, cases[0])["subject"]["reference"]
    rtype, rid = patient.split("/")
    stored = service.read(rtype, rid)
    assert stored.content is not None and b"Berichtigt" in stored.content


def test_a_worker_that_dies_leaves_its_rows_to_the_main_process(
    service: ResourceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    if _expected_workers(service) == 1:
        pytest.skip("SQLite imports in one process")

    def die(*args: object) -> None:
        os._exit(3)

    monkeypatch.setattr(parallel, "_work", die)
    data, cases = _export(Fresh(), 12)
    report = _import(service, data)
    assert (report.rows, report.imported, report.rejected) == (12, 12, 0)
    assert any("exit code 3" in w.reason for w in report.warnings)
    for case in cases:
        referral(service, TK_IK, case)


def test_a_silent_worker_is_stopped_and_its_rows_written_by_the_main_process(
    service: ResourceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    if _expected_workers(service) == 1:
        pytest.skip("SQLite imports in one process")

    def hang(*args: object) -> None:
        time.sleep(120)  # e.g. blocked on a lock the fork copied

    monkeypatch.setattr(parallel, "_work", hang)
    monkeypatch.setattr(parallel, "STALL_SECONDS", 1.0)
    data, cases = _export(Fresh(), 12)
    report = _import(service, data)
    assert (report.rows, report.imported, report.rejected) == (12, 12, 0)
    assert any("sent nothing for 1.0 s" in w.reason for w in report.warnings)
    for case in cases:
        referral(service, TK_IK, case)


def test_rows_of_one_kvnr_stay_in_one_worker_in_file_order() -> None:
    from adapters.insurer.layout import load

    data, _ = _export(Fresh(), 30)
    layout = load("tk")
    rows = [parse(r, layout) for r in read_export(data, layout).records]
    good = [r for r in rows if isinstance(r, Referral)]
    parts = parallel.partition(good, 3)
    assert sorted(r.row for p in parts for r in p) == [r.row for r in good]
    owner = {r.kvnr: i for i, p in enumerate(parts) for r in p}
    for i, part in enumerate(parts):
        assert all(owner[r.kvnr] == i for r in part)
        assert [r.row for r in part] == sorted(r.row for r in part)


def test_small_files_and_sqlite_stay_in_one_process(service: ResourceService) -> None:
    data, _ = _export(Fresh(), 6)
    assert ingest(service, data, "tk").workers == 1


def test_workers_by_default_only_without_booking_rules(service: ResourceService) -> None:
    from adapters.insurer.ingest import _workers
    from fhir_server.pathway.rules import pathway_hooks

    rows = 10 * parallel.MIN_ROWS_PER_WORKER
    serial = _expected_workers(service) == 1
    assert _workers(service, None, rows) == (1 if serial else parallel.default_workers())
    assert _workers(service, 3, rows) == (1 if serial else 3)
    booking = ResourceService(service.db, hooks=pathway_hooks())
    assert _workers(booking, None, rows) == 1  # Slot locks would serialise the workers
    assert _workers(booking, 2, rows) == (1 if serial else 2)


def test_statistics_are_refreshed_as_the_import_grows_and_a_failure_only_warns(
    service: ResourceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.insurer import writer

    calls: list[int] = []

    def refresh() -> None:
        calls.append(1)
        raise RuntimeError("no ANALYZE for you")

    monkeypatch.setattr(writer, "_FIRST_ANALYZE", 5)
    monkeypatch.setattr(service, "refresh_statistics", refresh)
    data, _ = _export(Fresh(), 6)
    report = ingest(service, data, "tk", workers=1, batch_size=1)
    assert (report.imported, report.rejected) == (6, 0)
    assert calls == [1]  # tried once; after a failure the import goes on without


def test_rows_a_worker_rejects_reach_the_report(service: ResourceService) -> None:
    data, cases = _export(Fresh(), 12)
    kvnr = data.decode("utf-8").split("\r\n")[4].split(";")[2]  # row 4's patient
    for _ in range(2):
        body = {"resourceType": "Patient", "identifier": [{"system": KVNR_SYSTEM, "value": kvnr}]}
        service.create("Patient", body)
    report = _import(service, data)
    assert report.workers == _expected_workers(service)
    assert (report.imported, report.rejected) == (11, 1)
    (error,) = report.errors
    assert (error.row, error.field, error.value, error.referral_id) == (4, "KVNR", kvnr, cases[3])
    assert error.reason.startswith("2 Patient resources already carry this identifier")

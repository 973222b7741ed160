"""Job life cycle: 202 while waiting, 200 when done, durable across a restart, DELETE."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.bulk.conftest import ASYNC, bulk_env, kick_off, wait_manifest
from tests.conftest import LiveServer


def test_status_is_202_until_done_and_the_job_survives_a_restart(
    own_url: str, tmp_path: Path
) -> None:
    idle = LiveServer(own_url, bulk_env(tmp_path, IVZ_EXPORT_WORKERS="0")).start()
    try:
        with httpx.Client(base_url=idle.base, timeout=30) as fhir:
            status_url = kick_off(fhir, "/$export", _type="Patient")
            job = status_url.rsplit("/", 1)[1]
            waiting = fhir.get(f"/$export-status/{job}")
            assert waiting.status_code == 202
            assert waiting.headers["X-Progress"]
    finally:
        idle.stop()
    worker = LiveServer(own_url, bulk_env(tmp_path)).start()
    try:
        with httpx.Client(base_url=worker.base, timeout=30) as fhir:
            manifest = wait_manifest(fhir, f"/$export-status/{job}")
            assert manifest["request"].endswith("$export?_type=Patient")
    finally:
        worker.stop()


def test_delete_removes_a_finished_job_and_its_files(
    fhir: httpx.Client, bulk_server: LiveServer
) -> None:
    fhir.post("/Patient", json={"resourceType": "Patient"})
    status_url = kick_off(fhir, "/$export", _type="Patient")
    manifest = wait_manifest(fhir, status_url)
    file_url = manifest["output"][0]["url"]
    assert fhir.delete(status_url).status_code == 202
    assert fhir.get(status_url).status_code == 404
    assert fhir.get(file_url).status_code == 404


def test_file_names_outside_the_job_are_404(fhir: httpx.Client) -> None:
    manifest = wait_manifest(fhir, kick_off(fhir, "/$export", _type="Patient"))
    job = manifest["output"][0]["url"].split("/")[-2] if manifest["output"] else "x"
    for name in ("..%2F..%2Fetc%2Fpasswd", ".hidden.ndjson", "Patient-1.json"):
        assert fhir.get(f"/$export-file/{job}/{name}").status_code == 404


def test_delete_cancels_a_waiting_job(own_url: str, tmp_path: Path) -> None:
    idle = LiveServer(own_url, bulk_env(tmp_path, IVZ_EXPORT_WORKERS="0")).start()
    try:
        with httpx.Client(base_url=idle.base, timeout=30) as fhir:
            status_url = kick_off(fhir, "/Patient/$export")
            assert fhir.delete(status_url).status_code == 202
            assert fhir.get(status_url).status_code == 404
    finally:
        idle.stop()


def test_kick_off_answers_202_with_content_location(fhir: httpx.Client) -> None:
    response = fhir.get("/$export", headers=ASYNC)
    assert response.status_code == 202
    assert "/fhir/$export-status/" in response.headers["Content-Location"]

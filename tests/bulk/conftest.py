"""Bulk tests get a fresh database per module (a system export sees every resource in it) and
a real ``ivz serve`` on it, with files in a temporary export directory."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_server.fhir import jsonio
from tests.conftest import STORES, LiveServer, fresh_url

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def bulk_env(export_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "IVZ_AUTH": "off",
        "IVZ_EXPORT_DIR": str(export_dir),
        "IVZ_EXPORT_MAX_LINES": "2",  # several files per type: splitting is exercised too
        "IVZ_EXPORT_PAGE_SIZE": "2",  # several keyset pages per type
        **extra,
    }


@pytest.fixture(scope="module", params=STORES)
def bulk_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_url(str(request.param), tmp_path_factory.mktemp("bulkdb"), "ivz_bulk")


@pytest.fixture(params=STORES)
def own_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own: no module server's worker may claim its jobs."""
    yield from fresh_url(str(request.param), tmp_path, "ivz_bulk")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def bulk_server(bulk_url: str, export_dir: Path) -> Iterator[LiveServer]:
    live = LiveServer(bulk_url, bulk_env(export_dir)).start()
    yield live
    live.stop()


@pytest.fixture()
def fhir(bulk_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bulk_server.base, timeout=30) as client:
        yield client


def create(client: httpx.Client, resource: dict[str, Any]) -> str:
    response = client.post(f"/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@dataclass
class Cohort:
    """Two patients in a Group, one outside it, their records and shared care resources."""

    ids: dict[str, set[str]]
    a: str
    b: str
    c: str
    group: str
    practitioner: str


def seed(client: httpx.Client) -> Cohort:
    ids: dict[str, set[str]] = {}

    def add(resource: dict[str, Any]) -> str:
        rid = create(client, resource)
        ids.setdefault(resource["resourceType"], set()).add(rid)
        return rid

    org = add({"resourceType": "Organization", "name": "Spine clinic"})
    doc = add({"resourceType": "Practitioner", "name": [{"family": "Wirbel"}]})
    a, b, c = (add({"resourceType": "Patient", "gender": "female"}) for _ in range(3))
    code = {"coding": [{"system": "http://loinc.org", "code": "72514-3"}]}
    other = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}
    for patient, concept in ((a, code), (a, other), (a, code), (b, code), (c, other)):
        add(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": concept,
                "subject": {"reference": f"Patient/{patient}"},
                "performer": [{"reference": f"Practitioner/{doc}"}],
            }
        )
    add(
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{a}"},
            "code": {"text": "lumbar disc herniation"},
        }
    )
    add(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"Patient/{c}"},
            "serviceProvider": {"reference": f"Organization/{org}"},
        }
    )
    group = add(
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [
                {"entity": {"reference": f"Patient/{a}"}},
                {"entity": {"reference": f"Patient/{b}"}},
            ],
        }
    )
    return Cohort(ids, a, b, c, group, doc)


def kick_off(client: httpx.Client, path: str, **params: str) -> str:
    response = client.get(path, params=params, headers=ASYNC)
    assert response.status_code == 202, response.text
    return str(response.headers["Content-Location"])


def wait_manifest(client: httpx.Client, status_url: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(status_url)
        if response.status_code == 200:
            manifest: dict[str, Any] = response.json()
            return manifest
        assert response.status_code == 202, response.text
        time.sleep(0.1)
    raise AssertionError(f"export {status_url} did not complete within {timeout} s")


def exported(client: httpx.Client, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every exported resource by type, checking each file's count and media type."""
    found: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        response = client.get(item["url"])
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = response.content.splitlines()
        assert len(lines) == item["count"]
        for line in lines:
            resource = jsonio.loads(line)
            assert resource["resourceType"] == item["type"]
            found.setdefault(item["type"], []).append(resource)
    return found


def id_sets(found: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    """Ids per type; each resource must appear exactly once."""
    out: dict[str, set[str]] = {}
    for rtype, items in found.items():
        ids = [r["id"] for r in items]
        assert len(ids) == len(set(ids)), f"{rtype} exported twice"
        out[rtype] = set(ids)
    return out

"""Bulk export and subscription notifications stay within the requesting client's rule."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.access.rules import rules
from tests.access.conftest import World
from tests.access.test_rules import SEES
from tests.bulk.conftest import ASYNC, exported, wait_manifest

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _export_ids(world: World, name: str, path: str) -> set[str]:
    with world.client(name) as http:
        response = http.get(path, headers=ASYNC)
        assert response.status_code == 202, response.text
        manifest = wait_manifest(http, response.headers["Content-Location"])
        files = exported(http, manifest)
    return {f"{t}/{r['id']}" for t, rows in files.items() for r in rows}


@pytest.mark.parametrize("name", ["insurer-a", "team-02", "ehr-h1"])
def test_system_export_holds_only_what_the_client_may_see(world: World, name: str) -> None:
    found = _export_ids(world, name, "$export")
    health = {k for k in found if k.split("/")[0] not in rules().open_types}
    assert health == SEES[name]
    assert "Organization/ins-a" in found  # directory data is exported to everyone


def test_patient_export_covers_only_the_clients_patients(world: World) -> None:
    found = _export_ids(world, "insurer-b", "Patient/$export")
    assert "Patient/p2" in found
    assert not any(k.endswith("/p1") or k.endswith("/o1") for k in found)


def _subscription(criteria: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "verdicts of my cases",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook"},
    }


def _pending(world: World, name: str, subscription: str) -> int:
    with world.client(name) as http:
        params = http.get(f"Subscription/{subscription}/$status").json()["parameter"]
    return int(next(p["valueInteger"] for p in params if p["name"] == "pending"))


def test_a_subscriber_is_notified_only_of_what_it_may_read(world: World) -> None:
    with world.client("team-01") as http:
        created = http.post("Subscription", json=_subscription("Observation?status=final"))
        assert created.status_code == 201, created.text
        subscription = created.json()["id"]
    with world.client("admin") as http:
        for case in ("r1", "r2"):
            obs = {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": "odi"},
                "basedOn": [{"reference": f"ServiceRequest/{case}"}],
            }
            assert http.post("Observation", json=obs, headers=FHIR_JSON).status_code == 201
    # Delivery is off in tests: the owed notifications stay pending, one per readable write.
    assert _pending(world, "team-01", subscription) == 1


def test_a_client_cannot_see_another_clients_subscription(world: World) -> None:
    with world.client("ehr-h1") as http:
        subscription = http.post("Subscription", json=_subscription("CarePlan?status=active"))
        assert subscription.status_code == 201, subscription.text
        sid = subscription.json()["id"]
        assert http.get(f"Subscription/{sid}").status_code == 200
    with world.client("ehr-h2") as http:
        assert http.get(f"Subscription/{sid}").status_code == 404
        assert http.get(f"Subscription/{sid}/$status").status_code == 404
    assert f"Subscription/{sid}" not in world.ids("ehr-h2", "Subscription")

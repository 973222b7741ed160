"""Each client kind sees exactly what its rule reaches, on every read path (docs/access.md)."""

from __future__ import annotations

import pytest

from fhir_server.access.rules import rules
from tests.access.conftest import WORLD, World

OPEN = {"Organization", "HealthcareService"}
#: client → the non-directory resources it may see
SEES: dict[str, set[str]] = {
    "insurer-a": {"Patient/p1", "Coverage/c1", "Condition/d1", "ServiceRequest/r1",
                  "Appointment/a1", "Observation/o1", "Encounter/e1"},
    "insurer-b": {"Patient/p2", "Coverage/c2", "Condition/d2", "ServiceRequest/s2",
                  "ServiceRequest/r2", "Appointment/a2", "Observation/o2"},
    "team-01": {"Patient/p1", "Coverage/c1", "Condition/d1", "ServiceRequest/r1",
                "Appointment/a1", "Observation/o1"},
    "team-02": {"Patient/p2", "Coverage/c2", "Condition/d2", "ServiceRequest/s2",
                "ServiceRequest/r2", "Appointment/a2", "Observation/o2"},
    "ehr-h1": {"Patient/p1", "Coverage/c1", "Condition/d1", "ServiceRequest/r1",
               "Appointment/a1", "Observation/o1"},
    "ehr-h2": {"Patient/p2", "Coverage/c2", "Condition/d2", "ServiceRequest/s2",
               "ServiceRequest/r2", "Appointment/a2", "Observation/o2"},
}  # fmt: skip
HEALTH = sorted(f"{r['resourceType']}/{r['id']}" for r in WORLD if r["resourceType"] not in OPEN)
DIRECTORY = sorted(f"{r['resourceType']}/{r['id']}" for r in WORLD if r["resourceType"] in OPEN)
CLIENTS = sorted(SEES)


@pytest.mark.parametrize("name", CLIENTS)
def test_read_answers_404_outside_the_clients_rule(world: World, name: str) -> None:
    with world.client(name) as http:
        for key in HEALTH:
            response = http.get(key)
            expected = 200 if key in SEES[name] else 404
            assert response.status_code == expected, (name, key, response.text)
            if expected == 404:
                assert key.split("/")[1] not in response.text.replace(key, "")


@pytest.mark.parametrize("name", CLIENTS)
def test_directory_resources_are_open_to_every_client(world: World, name: str) -> None:
    with world.client(name) as http:
        for key in DIRECTORY:
            assert http.get(key).status_code == 200, (name, key)


def test_administrator_sees_everything(world: World) -> None:
    with world.client("admin") as http:
        for key in HEALTH:
            assert http.get(key).status_code == 200, key


@pytest.mark.parametrize("name", CLIENTS)
def test_vread_follows_read(world: World, name: str) -> None:
    with world.client(name) as http:
        for key in HEALTH:
            expected = 200 if key in SEES[name] else 404
            assert http.get(f"{key}/_history/1").status_code == expected, (name, key)
            assert http.get(f"{key}/_history").status_code == expected, (name, key)


@pytest.mark.parametrize("name", CLIENTS)
def test_type_search_finds_only_visible_resources(world: World, name: str) -> None:
    for rtype in ("Patient", "Observation", "ServiceRequest", "Coverage", "Encounter"):
        want = {k for k in SEES[name] if k.startswith(rtype + "/")}
        assert world.ids(name, rtype) == want, (name, rtype)


@pytest.mark.parametrize("name", CLIENTS)
def test_system_search_and_totals_count_only_visible_resources(world: World, name: str) -> None:
    found = world.ids(name, "", _type="Patient,Observation,Condition")
    want = {k for k in SEES[name] if k.split("/")[0] in ("Patient", "Observation", "Condition")}
    assert found == want
    with world.client(name) as http:
        bundle = http.get("Observation", params={"_total": "accurate", "_count": "1"}).json()
    assert bundle["total"] == len([k for k in SEES[name] if k.startswith("Observation/")])


@pytest.mark.parametrize("name", CLIENTS)
def test_history_lists_only_visible_resources(world: World, name: str) -> None:
    for path in ("_history", "Observation/_history", "Patient/_history"):
        found = world.ids(name, path, _count="100")
        health = {k for k in found if k.split("/")[0] not in rules().open_types}
        prefix = path.split("/")[0] + "/" if path != "_history" else ""
        assert health == {k for k in SEES[name] if k.startswith(prefix)}, (name, path)


def test_include_leaves_out_what_the_client_may_not_see(world: World) -> None:
    query = {"_id": "o1", "_include": "Observation:encounter"}
    assert world.ids("insurer-a", "Observation", **query) == {"Observation/o1", "Encounter/e1"}
    assert world.ids("team-01", "Observation", **query) == {"Observation/o1"}


def test_revinclude_leaves_out_what_the_client_may_not_see(world: World) -> None:
    query = {"_id": "p1", "_revinclude": "Encounter:subject"}
    assert world.ids("insurer-a", "Patient", **query) == {"Patient/p1", "Encounter/e1"}
    assert world.ids("team-01", "Patient", **query) == {"Patient/p1"}
    wild = {"_id": "r1", "_include": "*", "_revinclude": "Observation:based-on"}
    found = world.ids("team-01", "ServiceRequest", **wild)
    assert found >= {"ServiceRequest/r1", "Patient/p1", "Observation/o1", "Organization/h1"}
    assert not found - SEES["team-01"] - {"Organization/h1"}


def test_chained_search_does_not_reach_through_invisible_resources(world: World) -> None:
    query = {"encounter:Encounter.status": "finished"}
    assert world.ids("insurer-a", "Observation", **query) == {"Observation/o1"}
    assert world.ids("team-01", "Observation", **query) == set()


def test_has_does_not_match_on_invisible_resources(world: World) -> None:
    query = {"_has:Encounter:subject:status": "finished"}
    assert world.ids("insurer-a", "Patient", **query) == {"Patient/p1"}
    assert world.ids("team-01", "Patient", **query) == set()


def test_compartment_search_of_an_invisible_patient_answers_404(world: World) -> None:
    with world.client("team-02") as http:
        assert http.get("Patient/p1/Observation").status_code == 404
    assert world.ids("team-01", "Patient/p1/Observation") == {"Observation/o1"}


def test_everything_is_narrowed_to_the_client(world: World) -> None:
    insurer = world.ids("insurer-a", "Patient/p1/$everything")
    team = world.ids("team-01", "Patient/p1/$everything")
    assert "Encounter/e1" in insurer
    assert "Encounter/e1" not in team
    assert {"Observation/o1", "Condition/d1", "Coverage/c1"} <= team
    with world.client("team-02") as http:
        assert http.get("Patient/p1/$everything").status_code == 404


def test_batch_get_entries_are_narrowed(world: World) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Observation/o1"}},
            {"request": {"method": "GET", "url": "Observation/o2"}},
            {"request": {"method": "GET", "url": "Observation?status=final"}},
        ],
    }
    with world.client("team-01") as http:
        out = http.post("", json=bundle, headers={"Content-Type": "application/fhir+json"}).json()
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses[0].startswith("200") and statuses[1].startswith("404")
    searched = out["entry"][2]["resource"]
    ids = {
        e["resource"]["id"]
        for e in searched.get("entry", [])
        if e.get("search", {}).get("mode") == "match"
    }
    assert ids == {"o1"}

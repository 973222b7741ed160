"""Writes by a restricted client: what it may not see it cannot change, and what it writes
must be within its rule (docs/access.md)."""

from __future__ import annotations

from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from fhir_server.storage.clients import Client, add_client
from tests.access.conftest import ALL, World
from tests.auth.conftest import Registered, jwks_of

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _observation(case: str, rid: str | None = None) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "pain"},
        "basedOn": [{"reference": f"ServiceRequest/{case}"}],
        "valueInteger": 3,
    }
    if rid:
        obs["id"] = rid
    return obs


def _version(world: World, key: str) -> str:
    with world.client("admin") as http:
        return str(http.get(key).json()["meta"]["versionId"])


def test_update_of_an_invisible_resource_answers_404_and_changes_nothing(world: World) -> None:
    before = _version(world, "Observation/o2")
    with world.client("team-01") as http:
        response = http.put("Observation/o2", json=_observation("r2", "o2"), headers=FHIR_JSON)
    assert response.status_code == 404
    assert _version(world, "Observation/o2") == before


def test_patch_and_delete_of_an_invisible_resource_answer_404(world: World) -> None:
    patch = [{"op": "replace", "path": "/status", "value": "amended"}]
    with world.client("ehr-h1") as http:
        patched = http.patch(
            "Observation/o2", json=patch, headers={"Content-Type": "application/json-patch+json"}
        )
        deleted = http.delete("Observation/o2")
    assert patched.status_code == 404
    assert deleted.status_code == 404
    with world.client("admin") as http:
        assert http.get("Observation/o2").json()["status"] == "final"


def test_create_outside_the_rule_is_refused_and_not_stored(world: World) -> None:
    with world.client("team-01") as http:
        response = http.post("Observation", json=_observation("r2"), headers=FHIR_JSON)
    assert response.status_code == 403
    assert response.json()["resourceType"] == "OperationOutcome"
    assert world.ids("admin", "Observation", **{"based-on": "ServiceRequest/r2"}) == {
        "Observation/o2"
    }


def test_create_within_the_rule_is_stored_and_readable(world: World) -> None:
    with world.client("team-01") as http:
        response = http.post("Observation", json=_observation("r1"), headers=FHIR_JSON)
        assert response.status_code == 201, response.text
        created = response.json()["id"]
        assert http.get(f"Observation/{created}").status_code == 200
    with world.client("team-02") as http:
        assert http.get(f"Observation/{created}").status_code == 404


def test_conditional_update_does_not_match_invisible_resources(world: World) -> None:
    with world.client("team-01") as http:
        response = http.put(
            "Observation", params={"_id": "o2"}, json=_observation("r2"), headers=FHIR_JSON
        )
    # No visible match: a create, which would be outside the rule.
    assert response.status_code == 403
    assert _version(world, "Observation/o2") == "1"


def test_transaction_with_one_forbidden_entry_stores_nothing(world: World) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": _observation("r1"), "request": {"method": "POST", "url": "Observation"}},
            {
                "resource": _observation("r2", "o2"),
                "request": {"method": "PUT", "url": "Observation/o2"},
            },
        ],
    }
    before = world.ids("admin", "Observation")
    with world.client("team-01") as http:
        response = http.post("", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 404
    assert "o2" not in response.json()["issue"][0].get("diagnostics", "").replace(
        "Observation/o2", ""
    )
    assert world.ids("admin", "Observation") == before


def test_conditional_reference_cannot_resolve_to_an_invisible_resource(world: World) -> None:
    obs = _observation("r1")
    obs["subject"] = {"reference": "Patient?_id=p2"}
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": obs, "request": {"method": "POST", "url": "Observation"}}],
    }
    with world.client("team-01") as http:
        response = http.post("", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 412  # as if p2 did not exist


def test_a_client_without_its_attribute_sees_only_directory_data(world: World) -> None:
    # An insurer registered without an IK reaches no patient.

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with world.db.write() as conn:
        add_client(conn, Client("insurer-no-ik", "insurer", (ALL,), jwks_of(key)))
    token = Registered("insurer-no-ik", key, world.server).token(ALL)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    with httpx.Client(base_url=world.server.base, headers=headers, timeout=30) as http:
        assert http.get("Patient/p1").status_code == 404
        assert http.get("Patient").json().get("entry", []) == []
        assert http.get("Organization/ins-a").status_code == 200


def test_restricted_clients_do_not_write_endpoints(world: World) -> None:
    """An Endpoint decides where verdicts are sent: administrators configure it."""
    endpoint = {
        "resourceType": "Endpoint",
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "hl7v2-mllp",
        },
        "payloadType": [{"text": "ORU^R01"}],
        "address": "mllp://attacker.example:2575",
    }
    with world.client("team-01") as http:
        assert http.post("Endpoint", json=endpoint, headers=FHIR_JSON).status_code == 403
    with world.client("admin") as http:
        created = http.post("Endpoint", json=endpoint, headers=FHIR_JSON)
        assert created.status_code == 201, created.text
        eid = created.json()["id"]
    with world.client("team-01") as http:
        assert http.get(f"Endpoint/{eid}").status_code == 200  # readable directory data
        assert http.delete(f"Endpoint/{eid}").status_code == 403

"""A real ``ivz serve`` with IVZ_AUTH=on, one client of each kind, and two insurers' cases.

World (ids fixed): insurer A (IK 101575519) insures p1, insurer B (IK 104940005) insures p2
(B's Coverage names the payor by identifier only). Hospital h1 requested referral r1 for p1,
hospital h2 proposed the surgery (s2) behind referral r2 for p2. r1 is booked with team-01
(a1), r2 with team-02 (a2). Each case has a Condition, an assessment Observation; p1 also
has an Encounter that belongs to no case (o1 names it as its encounter).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fhir_server.service.transaction import put_bundle
from fhir_server.storage import migrate
from fhir_server.storage.clients import Client, add_client
from fhir_server.storage.database import Database
from tests.auth.conftest import Registered, jwks_of
from tests.conftest import LiveServer, fresh_url

IK_SYSTEM = "http://fhir.de/sid/arge-ik/iknr"
IK_A, IK_B = "101575519", "104940005"
ALL = "system/*.cruds"


def _org(rid: str, ik: str | None = None) -> dict[str, Any]:
    org: dict[str, Any] = {"resourceType": "Organization", "id": rid, "name": rid}
    if ik:
        org["identifier"] = [{"system": IK_SYSTEM, "value": ik}]
    return org


def _ref(target: str) -> dict[str, str]:
    return {"reference": target}


WORLD: list[dict[str, Any]] = [
    _org("ins-a", IK_A),
    _org("ins-b", IK_B),
    _org("h1"),
    _org("h2"),
    _org("team-01"),
    _org("team-02"),
    {
        "resourceType": "HealthcareService",
        "id": "team-01",
        "providedBy": _ref("Organization/team-01"),
    },
    {
        "resourceType": "HealthcareService",
        "id": "team-02",
        "providedBy": _ref("Organization/team-02"),
    },
    {"resourceType": "Patient", "id": "p1", "name": [{"family": "Eins", "given": ["Anna"]}]},
    {"resourceType": "Patient", "id": "p2", "name": [{"family": "Zwei", "given": ["Bernd"]}]},
    {
        "resourceType": "Coverage",
        "id": "c1",
        "status": "active",
        "beneficiary": _ref("Patient/p1"),
        "payor": [
            {"reference": "Organization/ins-a", "identifier": {"system": IK_SYSTEM, "value": IK_A}}
        ],
    },
    {
        "resourceType": "Coverage",
        "id": "c2",
        "status": "active",
        "beneficiary": _ref("Patient/p2"),
        "payor": [{"identifier": {"system": IK_SYSTEM, "value": IK_B}, "display": "Kasse B"}],
    },
    {
        "resourceType": "Condition",
        "id": "d1",
        "subject": _ref("Patient/p1"),
        "code": {"text": "M51.2"},
    },
    {
        "resourceType": "Condition",
        "id": "d2",
        "subject": _ref("Patient/p2"),
        "code": {"text": "M54.5"},
    },
    {
        "resourceType": "ServiceRequest",
        "id": "s2",
        "status": "active",
        "intent": "proposal",
        "subject": _ref("Patient/p2"),
        "performer": [_ref("Organization/h2")],
    },
    {
        "resourceType": "ServiceRequest",
        "id": "r1",
        "status": "active",
        "intent": "order",
        "subject": _ref("Patient/p1"),
        "requester": _ref("Organization/h1"),
        "reasonReference": [_ref("Condition/d1")],
        "insurance": [_ref("Coverage/c1")],
    },
    {
        "resourceType": "ServiceRequest",
        "id": "r2",
        "status": "active",
        "intent": "order",
        "subject": _ref("Patient/p2"),
        "requester": _ref("Organization/ins-b"),
        "reasonReference": [_ref("Condition/d2")],
        "supportingInfo": [_ref("ServiceRequest/s2")],
        "insurance": [_ref("Coverage/c2")],
    },
    {
        "resourceType": "Appointment",
        "id": "a1",
        "status": "booked",
        "basedOn": [_ref("ServiceRequest/r1")],
        "participant": [
            {"actor": _ref("Patient/p1"), "status": "accepted"},
            {"actor": _ref("HealthcareService/team-01"), "status": "accepted"},
        ],
    },
    {
        "resourceType": "Appointment",
        "id": "a2",
        "status": "booked",
        "basedOn": [_ref("ServiceRequest/r2")],
        "participant": [
            {"actor": _ref("Patient/p2"), "status": "accepted"},
            {"actor": _ref("HealthcareService/team-02"), "status": "accepted"},
        ],
    },
    {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"text": "pain"},
        "subject": _ref("Patient/p1"),
        "encounter": _ref("Encounter/e1"),
        "basedOn": [_ref("ServiceRequest/r1")],
        "valueInteger": 7,
    },
    {
        "resourceType": "Observation",
        "id": "o2",
        "status": "final",
        "code": {"text": "pain"},
        "subject": _ref("Patient/p2"),
        "basedOn": [_ref("ServiceRequest/r2")],
        "valueInteger": 5,
    },
    {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": _ref("Patient/p1"),
    },
]

#: client name → (kind, attributes)
CLIENTS: dict[str, tuple[str, dict[str, str]]] = {
    "admin": ("admin", {}),
    "insurer-a": ("insurer", {"ik": IK_A}),
    "insurer-b": ("insurer", {"ik": IK_B}),
    "team-01": ("team", {"team": "team-01"}),
    "team-02": ("team", {"team": "team-02"}),
    "ehr-h1": ("ehr", {"org": "h1"}),
    "ehr-h2": ("ehr", {"org": "h2"}),
    # teams of the pathway cases built by tests/pathway/case_builder.py
    "clinic-01": ("team", {"team": "hs-team-01"}),
    "clinic-02": ("team", {"team": "hs-team-02"}),
}


@dataclass
class World:
    server: LiveServer
    db: Database
    tokens: dict[str, str]

    def client(self, name: str) -> httpx.Client:
        headers = {
            "Authorization": f"Bearer {self.tokens[name]}",
            "Accept": "application/fhir+json",
        }
        return httpx.Client(base_url=self.server.base, headers=headers, timeout=30)

    def ids(self, name: str, path: str, **params: Any) -> set[str]:
        """``type/id`` of every entry of a search (all pages)."""
        found: set[str] = set()
        with self.client(name) as http:
            response = http.get(path, params=params)
            while True:
                assert response.status_code == 200, response.text
                bundle = response.json()
                for entry in bundle.get("entry", []):
                    res = entry["resource"]
                    if res["resourceType"] != "OperationOutcome":
                        found.add(f"{res['resourceType']}/{res['id']}")
                nxt = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
                if not nxt:
                    return found
                response = http.get(nxt[0])


def seed(world: World) -> None:
    bundle = put_bundle(list(WORLD))
    with world.client("admin") as http:
        response = http.post("", json=bundle, headers={"Content-Type": "application/fhir+json"})
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def world(store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for url in fresh_url(store, tmp_path_factory.mktemp("access"), "ivz_access"):
        db = Database(url)
        migrate.upgrade(db)
        with db.write() as conn:
            for name, (kind, attributes) in CLIENTS.items():
                add_client(conn, Client(name, kind, (ALL,), jwks_of(key), attributes=attributes))
        exports = tmp_path_factory.mktemp("exports")
        env = {"IVZ_AUTH": "on", "IVZ_EXPORT_DIR": str(exports)}
        server = LiveServer(url, env=env).start()
        try:
            tokens = {n: Registered(n, key, server).token(ALL) for n in CLIENTS}
            found = World(server, db, tokens)
            seed(found)
            yield found
        finally:
            server.stop()
            db.dispose()

"""Every FHIR route needs a valid access token whose scopes cover the interaction."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_server.auth.principal import Principal
from fhir_server.auth.tokens import ServerKey, load_key, mint
from fhir_server.storage.database import Database
from tests.auth.conftest import bearer
from tests.conftest import LiveServer

PATIENT = {"resourceType": "Patient", "gender": "female", "birthDate": "1968-04-12"}
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _urls(server: LiveServer) -> tuple[str, str]:
    return f"http://127.0.0.1:{server.port}/auth/token", server.base


def _minted(db: Database, server: LiveServer, lifetime: int = 300, **kw: Any) -> str:
    issuer, audience = _urls(server)
    principal = Principal("minted", "admin", ("system/*.cruds",))
    key = kw.get("key") or load_key(db)
    return mint(key, principal, kw.get("iss", issuer), kw.get("aud", audience), lifetime)


def test_missing_token_is_401_with_challenge(auth_server: LiveServer) -> None:
    response = httpx.get(f"{auth_server.base}/Patient")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["resourceType"] == "OperationOutcome"


def test_hl7v2_endpoint_needs_a_token(auth_server: LiveServer) -> None:
    response = httpx.post(
        f"http://127.0.0.1:{auth_server.port}/hl7v2",
        content=b"MSH|^~\\&|",
        headers={"Content-Type": "application/hl7-v2"},
    )
    assert response.status_code == 401


def test_minted_token_is_accepted(db: Database, auth_server: LiveServer) -> None:
    token = _minted(db, auth_server)
    assert httpx.get(f"{auth_server.base}/Patient", headers=bearer(token)).status_code == 200


def test_expired_token_is_401(db: Database, auth_server: LiveServer) -> None:
    token = _minted(db, auth_server, lifetime=-60)
    response = httpx.get(f"{auth_server.base}/Patient", headers=bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_wrong_audience_is_401(db: Database, auth_server: LiveServer) -> None:
    token = _minted(db, auth_server, aud="https://other.example/fhir")
    assert httpx.get(f"{auth_server.base}/Patient", headers=bearer(token)).status_code == 401


def test_wrong_issuer_is_401(db: Database, auth_server: LiveServer) -> None:
    token = _minted(db, auth_server, iss="https://other.example/auth/token")
    assert httpx.get(f"{auth_server.base}/Patient", headers=bearer(token)).status_code == 401


def test_bad_signature_is_401(db: Database, auth_server: LiveServer) -> None:
    forged = ServerKey("ivz-server-1", ec.generate_private_key(ec.SECP384R1()))
    token = _minted(db, auth_server, key=forged)
    response = httpx.get(f"{auth_server.base}/Patient", headers=bearer(token))
    assert response.status_code == 401
    assert "signature" not in response.text.lower()


def test_alg_none_is_401(auth_server: LiveServer) -> None:
    issuer, audience = _urls(auth_server)
    claims = {"iss": issuer, "aud": audience, "sub": "x", "scope": "system/*.cruds"}
    now = int(time.time())
    token = jwt.encode({**claims, "iat": now, "exp": now + 60}, None, algorithm="none")
    assert httpx.get(f"{auth_server.base}/Patient", headers=bearer(token)).status_code == 401


def test_read_without_scope_is_403(register: Any) -> None:
    client = register("system/Observation.rs")
    token = client.token("system/Observation.rs")
    response = httpx.get(f"{client.server.base}/Patient/p1", headers=bearer(token))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_search_without_scope_is_403(register: Any) -> None:
    client = register("system/Patient.r")
    token = client.token("system/Patient.r")
    response = httpx.get(f"{client.server.base}/Patient", headers=bearer(token))
    assert response.status_code == 403


def test_create_without_scope_is_403(register: Any) -> None:
    client = register("system/Patient.rs")
    token = client.token("system/Patient.rs")
    response = httpx.post(
        f"{client.server.base}/Patient", json=PATIENT, headers={**bearer(token), **FHIR_JSON}
    )
    assert response.status_code == 403


def test_create_with_scope_is_201(register: Any) -> None:
    client = register("system/Patient.c")
    token = client.token("system/Patient.c")
    response = httpx.post(
        f"{client.server.base}/Patient", json=PATIENT, headers={**bearer(token), **FHIR_JSON}
    )
    assert response.status_code == 201


def _transaction(*types: str) -> dict[str, Any]:
    entries = [
        {"resource": {"resourceType": t}, "request": {"method": "POST", "url": t}} for t in types
    ]
    entries[0]["resource"] = PATIENT
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_transaction_entry_without_scope_is_403(register: Any) -> None:
    client = register("system/Patient.c")
    token = client.token("system/Patient.c")
    bundle = _transaction("Patient", "Basic")
    response = httpx.post(client.server.base, json=bundle, headers={**bearer(token), **FHIR_JSON})
    assert response.status_code == 403


def test_transaction_within_scope_passes(register: Any) -> None:
    client = register("system/Patient.c")
    token = client.token("system/Patient.c")
    response = httpx.post(
        client.server.base, json=_transaction("Patient"), headers={**bearer(token), **FHIR_JSON}
    )
    assert response.status_code == 200


def test_operation_needs_the_scopes_it_uses(register: Any) -> None:
    client = register("system/ServiceRequest.rs")
    token = client.token("system/ServiceRequest.rs")
    url = f"{client.server.base}/ServiceRequest/x/$verdict"
    response = httpx.post(url, json={"resourceType": "Parameters"}, headers=bearer(token))
    assert response.status_code == 403


def test_open_paths_need_no_token(auth_server: LiveServer) -> None:
    root = f"http://127.0.0.1:{auth_server.port}"
    assert httpx.get(f"{auth_server.base}/metadata").status_code == 200
    assert httpx.get(f"{root}/healthz").status_code == 200
    assert httpx.get(f"{root}/.well-known/smart-configuration").status_code == 200

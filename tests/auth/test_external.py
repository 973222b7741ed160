"""Keys fetched from a JWKS URL: a client registered with ``--jwks-url``, an external issuer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fhir_server.storage.clients import Client, add_client
from fhir_server.storage.database import Database
from tests.auth.conftest import Registered, bearer, jwks_of
from tests.conftest import LiveServer

ISSUER = "https://keycloak.example/realms/ivz"


@pytest.fixture(scope="session")
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """A real HTTP server publishing the test key's JWKS."""
    body = json.dumps(jwks_of(rsa_key)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
    httpd.shutdown()


@pytest.fixture(scope="session")
def oidc_server(database_url: str, jwks_url: str) -> Iterator[LiveServer]:
    env = {
        "IVZ_AUTH": "on",
        "IVZ_AUTH_EXTERNAL_ISSUER": ISSUER,
        "IVZ_AUTH_EXTERNAL_JWKS_URL": jwks_url,
    }
    live = LiveServer(database_url, env=env).start()
    yield live
    live.stop()


def _external_token(server: LiveServer, key: rsa.RSAPrivateKey, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": server.base,
        "sub": "svc-1",
        "azp": "claims-system",
        "scope": "system/Patient.rs",
        "ivz_kind": "insurer",
        "iat": now,
        "exp": now + 120,
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


def test_client_with_jwks_url_gets_token(
    db: Database, auth_server: LiveServer, rsa_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    client_id = f"url-{uuid.uuid4().hex[:10]}"
    with db.write() as conn:
        add_client(conn, Client(client_id, "ehr", ("system/*.rs",), None, jwks_url))
    token = Registered(client_id, rsa_key, auth_server).token("system/Patient.rs")
    assert httpx.get(f"{auth_server.base}/Patient", headers=bearer(token)).status_code == 200


def test_external_issuer_token_is_accepted(
    oidc_server: LiveServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = _external_token(oidc_server, rsa_key)
    assert httpx.get(f"{oidc_server.base}/Patient", headers=bearer(token)).status_code == 200


def test_external_token_attributes_drive_the_access_rules(
    oidc_server: LiveServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    """An insurer's external token names its IK: it reaches that insurer's patients only."""
    admin = _external_token(oidc_server, rsa_key, ivz_kind="admin", scope="system/*.cruds")
    ik_system = "http://fhir.de/sid/arge-ik/iknr"
    pid = f"ext-{uuid.uuid4().hex[:8]}"
    coverage = {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": f"Patient/{pid}"},
        "payor": [{"identifier": {"system": ik_system, "value": "101575519"}}],
    }
    with httpx.Client(base_url=oidc_server.base, headers=bearer(admin)) as http:
        assert http.put(f"Patient/{pid}", json={"resourceType": "Patient", "id": pid}).is_success
        assert http.post("Coverage", json=coverage).status_code == 201
    mine = _external_token(oidc_server, rsa_key, ivz_attributes={"ik": "101575519"})
    other = _external_token(oidc_server, rsa_key, ivz_attributes={"ik": "104940005"})
    assert httpx.get(f"{oidc_server.base}/Patient/{pid}", headers=bearer(mine)).status_code == 200
    assert httpx.get(f"{oidc_server.base}/Patient/{pid}", headers=bearer(other)).status_code == 404


def test_external_token_scopes_are_enforced(
    oidc_server: LiveServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = _external_token(oidc_server, rsa_key)
    response = httpx.get(f"{oidc_server.base}/Observation", headers=bearer(token))
    assert response.status_code == 403


def test_external_token_with_foreign_key_is_401(oidc_server: LiveServer) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = _external_token(oidc_server, other)
    assert httpx.get(f"{oidc_server.base}/Patient", headers=bearer(token)).status_code == 401


def test_external_token_for_other_audience_is_401(
    oidc_server: LiveServer, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = _external_token(oidc_server, rsa_key, aud="https://other.example/fhir")
    assert httpx.get(f"{oidc_server.base}/Patient", headers=bearer(token)).status_code == 401

"""A real ``ivz serve`` with IVZ_AUTH=on, registered clients and their RS384 keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fhir_server.storage.clients import Client, add_client
from fhir_server.storage.database import Database
from tests.conftest import LiveServer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="session")
def auth_server(database_url: str) -> Iterator[LiveServer]:
    live = LiveServer(database_url, env={"IVZ_AUTH": "on"}).start()
    yield live
    live.stop()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(key: rsa.RSAPrivateKey, kid: str = "k1") -> dict[str, Any]:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": kid, "alg": "RS384", "use": "sig"}]}


@dataclass
class Registered:
    """A client registered in the test database, with what it takes to get tokens."""

    client_id: str
    key: rsa.RSAPrivateKey
    server: LiveServer

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/auth/token"

    def assertion(self, **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "exp": now + 240,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides.pop("claims", {}))
        key = overrides.pop("key", self.key)
        return jwt.encode(claims, key, algorithm="RS384", headers={"kid": "k1"})

    def request_token(self, scope: str, assertion: str | None = None) -> httpx.Response:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion or self.assertion(),
            "scope": scope,
        }
        return httpx.post(self.token_url, data=form, timeout=30)

    def token(self, scope: str) -> str:
        response = self.request_token(scope)
        assert response.status_code == 200, response.text
        access_token: str = response.json()["access_token"]
        return access_token


@pytest.fixture()
def register(db: Database, auth_server: LiveServer, rsa_key: rsa.RSAPrivateKey) -> Any:
    """``register("system/*.cruds")``: a new client (fresh id) allowed those scopes."""

    def make(scopes: str, kind: str = "admin") -> Registered:
        client_id = f"test-{uuid.uuid4().hex[:12]}"
        client = Client(client_id, kind, tuple(scopes.split()), jwks_of(rsa_key))
        with db.write() as conn:
            add_client(conn, client)
        return Registered(client_id, rsa_key, auth_server)

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}

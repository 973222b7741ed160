"""SMART discovery, and IVZ_AUTH=off keeping the server open."""

from __future__ import annotations

import httpx

from tests.conftest import LiveServer


def test_smart_configuration_names_the_token_endpoint(auth_server: LiveServer) -> None:
    body = httpx.get(f"{auth_server.base}/.well-known/smart-configuration").json()
    assert body["token_endpoint"] == f"http://127.0.0.1:{auth_server.port}/auth/token"
    assert body["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(body["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert body["grant_types_supported"] == ["client_credentials"]
    assert "client-confidential-asymmetric" in body["capabilities"]


def test_server_jwks_publishes_the_signing_key(auth_server: LiveServer) -> None:
    body = httpx.get(f"http://127.0.0.1:{auth_server.port}/auth/jwks").json()
    assert [k["alg"] for k in body["keys"]] == ["ES384"]
    assert "d" not in body["keys"][0]


def test_auth_off_keeps_everything_open(server: LiveServer) -> None:
    assert httpx.get(f"{server.base}/Patient").status_code == 200


def test_capability_statement_declares_smart_security(auth_server: LiveServer) -> None:
    statement = httpx.get(f"{auth_server.base}/metadata", timeout=30).json()
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = security["extension"][0]["extension"]
    token = next(u["valueUri"] for u in uris if u["url"] == "token")
    assert token == f"http://127.0.0.1:{auth_server.port}/auth/token"

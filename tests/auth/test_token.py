"""POST /auth/token: client_credentials with an RS384 client assertion (SMART Backend Services)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.auth.conftest import bearer


def test_token_grants_access(register: Any) -> None:
    client = register("system/*.cruds")
    response = client.request_token("system/Patient.rs")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "system/Patient.rs"
    read = httpx.get(f"{client.server.base}/Patient", headers=bearer(body["access_token"]))
    assert read.status_code == 200


def test_scope_is_narrowed_to_allowed(register: Any) -> None:
    client = register("system/Patient.rs")
    response = client.request_token("system/*.cruds")
    assert response.status_code == 200
    assert response.json()["scope"] == "system/Patient.rs"


def test_v1_scopes_are_understood(register: Any) -> None:
    client = register("system/*.read")
    response = client.request_token("system/Observation.*")
    assert response.json()["scope"] == "system/Observation.rs"


def test_scope_beyond_allowed_is_invalid_scope(register: Any) -> None:
    client = register("system/Patient.rs")
    response = client.request_token("system/Observation.c")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_unknown_client_is_invalid_client(register: Any) -> None:
    client = register("system/*.rs")
    stranger = client.assertion(claims={"iss": "nobody", "sub": "nobody"})
    response = client.request_token("system/*.rs", stranger)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_replayed_assertion_is_refused(register: Any) -> None:
    client = register("system/*.rs")
    assertion = client.assertion()
    assert client.request_token("system/*.rs", assertion).status_code == 200
    replay = client.request_token("system/*.rs", assertion)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"


def test_assertion_signed_by_other_key_is_refused(register: Any) -> None:
    client = register("system/*.rs")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = client.request_token("system/*.rs", client.assertion(key=other))
    assert response.status_code == 401


def test_assertion_for_other_audience_is_refused(register: Any) -> None:
    client = register("system/*.rs")
    assertion = client.assertion(claims={"aud": "https://elsewhere.example/token"})
    assert client.request_token("system/*.rs", assertion).status_code == 401


def test_expired_assertion_is_refused(register: Any) -> None:
    client = register("system/*.rs")
    assertion = client.assertion(claims={"exp": int(time.time()) - 60})
    assert client.request_token("system/*.rs", assertion).status_code == 401


def test_assertion_living_over_five_minutes_is_refused(register: Any) -> None:
    client = register("system/*.rs")
    assertion = client.assertion(claims={"exp": int(time.time()) + 3600})
    assert client.request_token("system/*.rs", assertion).status_code == 401


def test_unsigned_assertion_is_refused(register: Any) -> None:
    client = register("system/*.rs")
    now = int(time.time())
    claims = {"iss": client.client_id, "sub": client.client_id, "aud": client.token_url}
    unsigned = jwt.encode({**claims, "exp": now + 60, "jti": "x1"}, None, algorithm="none")
    response = client.request_token("system/*.rs", unsigned)
    assert response.status_code == 401
    assert "signature" not in response.text.lower()


def test_other_grant_type_is_unsupported(register: Any) -> None:
    client = register("system/*.rs")
    form = {"grant_type": "password", "username": "a", "password": "b"}
    response = httpx.post(client.token_url, data=form, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_an_oversized_chunked_token_request_is_refused(auth_server: Any) -> None:
    """A chunked body has no Content-Length: the body itself is capped."""

    def chunks() -> Any:
        yield b"grant_type=client_credentials&client_assertion="
        for _ in range(100):
            yield b"x" * 4096

    response = httpx.post(
        f"http://127.0.0.1:{auth_server.port}/auth/token",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"

"""``ivz clients add|list|remove`` and ``ivz token`` against the test databases."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.auth.conftest import bearer, jwks_of
from tests.conftest import IVZ, LiveServer


def _ivz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IVZ, *args], capture_output=True, text=True, timeout=120)


def _add(database_url: str, jwks_file: Path, *extra: str) -> str:
    client_id = f"cli-{uuid.uuid4().hex[:10]}"
    result = _ivz(
        "clients", "add", "--id", client_id, "--kind", "insurer", "--scope", "system/Patient.rs",
        "--jwks", str(jwks_file), "--database-url", database_url, *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return client_id


def _jwks_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_of(rsa_key)))
    return path


def test_add_then_list_shows_client(
    database_url: str, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    client_id = _add(database_url, _jwks_file(tmp_path, rsa_key), "--ik", "101575519")
    listing = _ivz("clients", "list", "--database-url", database_url).stdout
    line = next(x for x in listing.splitlines() if x.startswith(client_id))
    assert "insurer" in line and "system/Patient.rs" in line and "ik=101575519" in line


def test_remove_forgets_client(
    database_url: str, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    client_id = _add(database_url, _jwks_file(tmp_path, rsa_key))
    assert _ivz("clients", "remove", client_id, "--database-url", database_url).returncode == 0
    assert client_id not in _ivz("clients", "list", "--database-url", database_url).stdout


def test_add_refuses_unknown_kind(database_url: str, tmp_path: Path, rsa_key: Any) -> None:
    result = _ivz(
        "clients", "add", "--id", "x", "--kind", "robot", "--scope", "system/*.rs",
        "--jwks", str(_jwks_file(tmp_path, rsa_key)), "--database-url", database_url,
    )  # fmt: skip
    assert result.returncode == 2


def test_token_command_mints_usable_token(
    database_url: str, tmp_path: Path, rsa_key: rsa.RSAPrivateKey, auth_server: LiveServer
) -> None:
    client_id = _add(database_url, _jwks_file(tmp_path, rsa_key))
    result = _ivz(
        "token", "--client", client_id, "--base-url", auth_server.base,
        "--database-url", database_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    response = httpx.get(f"{auth_server.base}/Patient", headers=bearer(result.stdout.strip()))
    assert response.status_code == 200

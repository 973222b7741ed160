"""With IVZ_AUTH=on: the principal is recorded, refusals too, and only admins read audit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fhir_server.auth.principal import Principal
from fhir_server.auth.tokens import load_key, mint
from fhir_server.storage.database import Database
from tests.api.helpers import unique_id
from tests.conftest import LiveServer


@pytest.fixture(scope="session")
def secured(database_url: str) -> Iterator[LiveServer]:
    live = LiveServer(database_url, env={"IVZ_AUTH": "on"}).start()
    yield live
    live.stop()


def _headers(db: Database, server: LiveServer, client_id: str, kind: str) -> dict[str, str]:
    principal = Principal(client_id, kind, ("system/*.cruds",))
    issuer = f"http://127.0.0.1:{server.port}/auth/token"
    token = mint(load_key(db), principal, issuer, server.base, 300)
    return {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}


def _events(db: Database, server: LiveServer, **params: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{server.base}/AuditEvent", params=params, headers=_headers(db, server, "root", "admin")
    )
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", [])]


def test_the_principal_is_the_agent(db: Database, secured: LiveServer) -> None:
    client_id, pid = unique_id(), unique_id()
    headers = _headers(db, secured, client_id, "admin")
    assert httpx.get(f"{secured.base}/Patient/{pid}", headers=headers).status_code == 404
    (event,) = _events(db, secured, agent=client_id)
    assert event["agent"][0]["who"]["identifier"]["value"] == client_id
    assert event["entity"][0]["what"]["reference"] == f"Patient/{pid}"


def test_missing_token_is_recorded(db: Database, secured: LiveServer) -> None:
    pid = unique_id()
    assert httpx.get(f"{secured.base}/Patient/{pid}").status_code == 401
    (event,) = _events(db, secured, entity=f"Patient/{pid}")
    assert event["outcome"] == "4"
    assert event["agent"][0]["who"]["identifier"]["value"] == "unauthenticated"


def test_only_admins_read_audit(db: Database, secured: LiveServer) -> None:
    headers = _headers(db, secured, unique_id(), "insurer")
    assert httpx.get(f"{secured.base}/AuditEvent", headers=headers).status_code == 403
    assert _events(db, secured, outcome="4", _count="1")[0]["outcomeDesc"].startswith("HTTP 403")

"""The ``ivz`` command line: schema management and serving with demo data."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from fhir_server.storage import migrate
from tests.conftest import IVZ, LiveServer


def _ivz(*args: str) -> str:
    done = subprocess.run([*IVZ, *args], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_db_upgrade_brings_a_fresh_database_to_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert "empty" in _ivz("db", "current", "--database-url", url)
    out = _ivz("db", "upgrade", "--database-url", url)
    assert f"at revision {migrate.head()}" in out
    assert _ivz("db", "current", "--database-url", url).strip() == migrate.head()


def test_serve_upgrades_a_fresh_database_and_loads_demo_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    live = LiveServer(url, env={"IVZ_DEMO_DATA": "true"}).start()
    try:
        r = httpx.get(f"{live.base}/ServiceRequest/demo-referral-1", timeout=10)
        assert r.status_code == 200
        assert r.json()["intent"] == "order"
    finally:
        live.stop()


def test_help_lists_the_commands() -> None:
    out = _ivz("--help")
    assert "serve" in out and "db" in out

"""The ``ivz`` command line: schema management and serving with demo data."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from fhir_server.storage import migrate
from tests.conftest import IVZ, SHARED, LiveServer

SHARED_SAMPLES = SHARED / "samples" / "hl7v2"


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


SAMPLE_ADT = SHARED_SAMPLES / "ADT" / "mirth__filereader_05_ADT_A04.hl7"


def test_serve_with_mllp_port_accepts_hl7_v2_and_exposes_it_over_fhir(tmp_path: Path) -> None:
    if not SAMPLE_ADT.is_file():
        pytest.skip(f"sample not found: {SAMPLE_ADT}")
    from tests.conftest import _free_port

    mllp_port = _free_port()
    url = f"sqlite:///{tmp_path / 'v2.db'}"
    live = LiveServer(url, env={"IVZ_MLLP_PORT": str(mllp_port)}).start()
    try:
        sent = subprocess.run(
            [*IVZ, "hl7", "send", str(SAMPLE_ADT), "--port", str(mllp_port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        found = httpx.get(f"{live.base}/Patient", params={"family": "MOUSE"}, timeout=10).json()
        assert found["total"] >= 1
        over_http = httpx.post(
            f"{live.base.removesuffix('/fhir')}/hl7v2",
            content=SAMPLE_ADT.read_bytes(),
            headers={"Content-Type": "application/hl7-v2"},
            timeout=30,
        )
        assert over_http.status_code == 200
        assert b"MSA|AA" in over_http.content
    finally:
        live.stop()

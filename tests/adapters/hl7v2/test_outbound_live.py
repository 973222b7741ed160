"""End to end through ``ivz serve`` with the sender on: configuration as FHIR data over the
API, ``$verdict`` over HTTP, the ORU^R01 acknowledged by a real MLLP receiver, and the
outbox as ``ivz hl7 outbox`` shows it; on both stores."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhir_server.storage.database import Database
from tests.adapters.hl7v2.outbound_helpers import (
    KVNR,
    ThreadedReceiver,
    clinic_resources,
    field_of,
    outbox_rows,
)
from tests.conftest import IVZ, STORES, LiveServer, fresh_url
from tests.pathway.case_builder import post, verdict_parameters

ON = {
    "IVZ_HL7_OUTBOUND": "on",
    "IVZ_HL7_OUTBOUND_POLL_SECONDS": "0.05",
    "IVZ_HL7_OUTBOUND_RETRY_SECONDS": "0.1",
    "IVZ_HL7_OUTBOUND_RETRY_MAX_SECONDS": "0.5",
    "IVZ_HL7_OUTBOUND_TIMEOUT_SECONDS": "5",
}


@pytest.fixture(params=STORES)
def live_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_url(str(request.param), tmp_path, "ivz_outbound_live")


def _ivz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IVZ, *args], capture_output=True, text=True, timeout=120)


def test_verdict_over_http_reaches_the_clinic_over_mllp(live_url: str) -> None:
    receiver = ThreadedReceiver(["AE"]).start()  # one error answer first: a real retry
    server = LiveServer(live_url, env=ON).start()
    try:
        spec, resources = clinic_resources("live", receiver.receiver.port)
        with httpx.Client(base_url=server.base, timeout=60) as fhir:
            post(fhir, resources)
            answer = fhir.post(
                f"/ServiceRequest/{spec.referral}/$verdict", json=verdict_parameters()
            )
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 30
        while len(receiver.receiver.got) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        got = receiver.receiver.got
        assert len(got) == 2 and got[0] == got[1]  # AE, then the same message again: AA
        message = got[0]
        assert field_of(message, "PID", 3).startswith(f"{KVNR}^^^&1.2.276.0.76.4.8&ISO")
        assert field_of(message, "OBX", 5).startswith("surgery-not-recommended^")
        db = Database(live_url)
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                rows = outbox_rows(db)
                if rows and rows[0].status == "delivered":
                    break
                time.sleep(0.05)
        finally:
            db.dispose()
        assert [(r.status, r.attempts, r.ack_code) for r in rows] == [("delivered", 2, "AA")]
        assert field_of(message, "MSH", 10) == rows[0].control_id
        time.sleep(0.5)
        assert len(receiver.receiver.got) == 2  # nothing more
    finally:
        server.stop()
        receiver.stop()
    listed = _ivz("hl7", "outbox", "--database-url", live_url)
    assert listed.returncode == 0, listed.stderr
    columns = listed.stdout.strip().split("\t")  # piped: tab-separated, one row per line
    assert columns[1] == "delivered" and columns[5] == rows[0].control_id
    shown = _ivz("hl7", "outbox", "--show", str(rows[0].id), "--database-url", live_url)
    assert shown.stdout.splitlines()[0].startswith("MSH|^~\\&|IVZ-BRIDGE|IVZ|KIS|TEAM-01|")
    again = _ivz("hl7", "outbox", "--retry", str(rows[0].id), "--database-url", live_url)
    assert again.returncode == 1 and "delivered already" in again.stdout

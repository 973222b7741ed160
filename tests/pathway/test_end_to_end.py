"""Issue 6's "done": a referral from each entry point — a FHIR transaction over HTTP, an HL7
REF^I12 over MLLP, an insurer export over HTTP — is booked within 48 h, assessed (ORU over
MLLP), seen (SIU over MLLP), decided ($verdict) and visible in $pathway, search and the
report, against a real ``ivz serve`` on each database."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from adapters.insurer.validators import kvnr_check_digit
from adapters.mllp import MLLPClient
from fhir_server.service.resources import ResourceService
from fhir_server.storage import migrate
from fhir_server.storage.database import Database
from tests.adapters.hl7v2 import message, segment
from tests.adapters.hl7v2.test_convert_ref import REFERRAL
from tests.adapters.insurer.helpers import sample
from tests.conftest import STORES, LiveServer, fresh_url
from tests.pathway.case_builder import verdict_parameters
from tests.pathway.conftest import add_slot, teams_without_slots

BASE = "https://ivz-bridge.example/fhir"
KVNR_OID = "1.2.276.0.76.4.8"
ENTRY_POINTS = ("fhir", "hl7", "insurer")
#: Each case's birth date as its entry point records it: the clinic's PID must agree, since a
#: Patient with the same KVNR but another birth date is refused, never merged (AE on PID-7).
BORN = {"fhir": "19610203", "hl7": "19640315", "insurer": "19640812"}
OUTCOMES = {"fhir": "surgery-confirmed", "hl7": "surgery-not-recommended"}


@dataclass
class Case:
    referral_id: str
    kvnr: str


@dataclass
class Run:
    client: httpx.Client
    cases: dict[str, Case]
    verdicts: dict[str, httpx.Response]


def _kvnr(letter: str) -> str:
    body = f"{letter}{datetime.now(UTC):%H%M%S}{ord(letter) % 100:03d}"[:9].ljust(9, "0")
    return body + str(kvnr_check_digit(body))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mllp(port: int, raw: bytes) -> bytes:
    async def go() -> bytes:
        async with await MLLPClient.connect("127.0.0.1", port) as client:
            return await client.request(raw)

    return asyncio.run(go())


def _fhir_transaction(kvnr: str, received: str) -> dict[str, Any]:
    ops = {"system": "http://fhir.de/CodeSystem/bfarm/ops", "version": "2026", "code": "5-836.30"}
    icd = {"system": "http://fhir.de/CodeSystem/bfarm/icd-10-gm", "version": "2026"}
    resources: list[tuple[str, dict[str, Any]]] = [
        (
            "urn:uuid:5a4c0e4e-0000-4000-8000-000000000001",
            {
                "resourceType": "Patient",
                "identifier": [{"system": "http://fhir.de/sid/gkv/kvid-10", "value": kvnr}],
                "name": [{"family": "Schulz", "given": ["Petra"]}],
                "gender": "female",
                "birthDate": "1961-02-03",
                "address": [{"postalCode": "10115", "city": "Berlin"}],
            },
        ),
        (
            "urn:uuid:5a4c0e4e-0000-4000-8000-000000000002",
            {
                "resourceType": "Condition",
                "subject": {"reference": "urn:uuid:5a4c0e4e-0000-4000-8000-000000000001"},
                "code": {"coding": [{**icd, "code": "M51.2"}]},
            },
        ),
        (
            "urn:uuid:5a4c0e4e-0000-4000-8000-000000000003",
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "proposal",
                "code": {"coding": [ops]},
                "subject": {"reference": "urn:uuid:5a4c0e4e-0000-4000-8000-000000000001"},
            },
        ),
        (
            "urn:uuid:5a4c0e4e-0000-4000-8000-000000000004",
            {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "11429006"}]},
                "reasonCode": [
                    {
                        "coding": [
                            {"system": "http://terminology.hl7.org/CodeSystem/v2-0336", "code": "S"}
                        ]
                    }
                ],
                "subject": {"reference": "urn:uuid:5a4c0e4e-0000-4000-8000-000000000001"},
                "authoredOn": received,
                "reasonReference": [{"reference": "urn:uuid:5a4c0e4e-0000-4000-8000-000000000002"}],
                "supportingInfo": [{"reference": "urn:uuid:5a4c0e4e-0000-4000-8000-000000000003"}],
            },
        ),
    ]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": url,
                "resource": res,
                "request": {"method": "POST", "url": res["resourceType"]},
            }
            for url, res in resources
        ],
    }


def _ref_i12(kvnr: str, today: str) -> bytes:
    raw = REFERRAL.replace(b"|20240312|", f"|{today}|".encode())
    raw = raw.replace(b"X110411675", kvnr.encode()).replace(b"|R1|", f"|R-{kvnr}|".encode())
    raw = raw.replace(b"ZM-2024-0042", f"ZM-{kvnr}".encode())
    return raw.replace(b"|19640315|M", b"|19640315|M|||Marienplatz 1^^M\xc3\xbcnchen^^80331^DE")


def _insurer_row(kvnr: str, received: str) -> bytes:
    header, first = sample("tk.csv").decode("utf-8").splitlines()[:2]
    row = first.replace("2024-03-04T09:12:00", received).replace("15.04.2024", "")
    row = row.replace("A123456780", kvnr).replace("TK-2024-0001", f"TK-E2E-{kvnr}")
    return f"{header}\n{row}\n".encode()


def _pid(kvnr: str, born: str) -> str:
    return f"PID|1||{kvnr}^^^&{KVNR_OID}&ISO^KVZ10||Muster^Erika||{born}|F"


def _siu_fulfilled(appointment: dict[str, Any], kvnr: str, born: str) -> bytes:
    number = next(
        i["value"] for i in appointment["identifier"] if i["system"] == f"{BASE}/sid/appointment"
    )
    start = datetime.fromisoformat(appointment["start"]).astimezone(UTC)
    return message(
        f"MSH|^~\\&|TERMIN|TEAM|IVZ|ZWEITMEINUNG|{start:%Y%m%d%H%M%S}||SIU^S14^SIU_S12|"
        f"S14-{number}|P|2.5",
        segment(
            "SCH",
            {
                1: f"{number}^IVZ",
                9: "90",
                10: "min",
                11: f"^^90^{start:%Y%m%d%H%M%S+0000}",
                25: "Complete",
            },
        ),
        _pid(kvnr, born),
    )


def _oru(kvnr: str, born: str) -> bytes:
    return message(
        f"MSH|^~\\&|KIS|TEAM|IVZ|ZWEITMEINUNG|20261125120000||ORU^R01^ORU_R01|O-{kvnr}|P|2.5",
        _pid(kvnr, born),
        f"OBR|1|A-{kvnr}^TEAM|A-{kvnr}^TEAM|ZM-ASSESS^Assessment^L|||20261125110000",
        "OBX|1|NM|72514-3^Pain severity 0-10^LN||6|{score}^^UCUM|||||F|||20261125110000",
        "OBX|2|CWE|mpss-stage^MPSS^IVZOBS||II^Stadium II^IVZMPSS||||||F|||20261125110000",
    )


def _search(client: httpx.Client, path: str, **params: str) -> list[dict[str, Any]]:
    answer = client.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return [e["resource"] for e in answer.json().get("entry", []) if e["search"]["mode"] == "match"]


def _appointment(client: httpx.Client, referral_id: str) -> dict[str, Any]:
    (found,) = _search(client, "/Appointment", **{"based-on": f"ServiceRequest/{referral_id}"})
    return found


@pytest.fixture(scope="module", params=STORES)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """All three entry points taken through the whole pathway once per store."""
    urls = fresh_url(str(request.param), tmp_path_factory.mktemp("e2e"))
    url = next(urls)
    db = Database(url)
    migrate.upgrade(db)
    service = ResourceService(db)
    teams_without_slots(service)
    now = datetime.now(UTC).replace(microsecond=0)
    for team in ("team-01", "team-06", "team-30"):  # Hamburg, Berlin, München
        for hours in (2, 4, 6):
            add_slot(service, team, now + timedelta(hours=hours))
    db.dispose()
    mllp = _free_port()
    server = LiveServer(url, env={"IVZ_MLLP_PORT": str(mllp)}).start()
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            yield _drive(client, mllp, now)
    finally:
        server.stop()
        next(urls, None)


def _drive(client: httpx.Client, mllp: int, now: datetime) -> Run:
    received = now.isoformat()
    kvnrs = {"fhir": _kvnr("F"), "hl7": _kvnr("H"), "insurer": _kvnr("I")}
    posted = client.post("", json=_fhir_transaction(kvnrs["fhir"], received))
    assert posted.status_code == 200, posted.text
    ack = _mllp(mllp, _ref_i12(kvnrs["hl7"], f"{now:%Y%m%d}"))
    assert b"MSA|AA" in ack, ack
    berlin = now.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%dT%H:%M:%S")
    imported = httpx.post(
        str(client.base_url).rstrip("/").removesuffix("/fhir") + "/ingest/insurer?layout=tk",
        content=_insurer_row(kvnrs["insurer"], berlin),
        headers={"Content-Type": "text/csv"},
        timeout=60,
    )
    assert imported.status_code == 200, imported.text
    cases = {}
    for entry, kvnr in kvnrs.items():
        (ref,) = _search(
            client,
            "/ServiceRequest",
            intent="order",
            **{"subject:Patient.identifier": f"http://fhir.de/sid/gkv/kvid-10|{kvnr}"},
        )
        cases[entry] = Case(ref["id"], kvnr)
    verdicts = {}
    for entry, case in cases.items():
        appointment = _appointment(client, case.referral_id)
        siu = _mllp(mllp, _siu_fulfilled(appointment, case.kvnr, BORN[entry]))
        assert b"MSA|AA" in siu, siu
        oru = _mllp(mllp, _oru(case.kvnr, BORN[entry]))
        assert b"MSA|AA" in oru, oru
        team = next(
            p["actor"]["reference"]
            for p in appointment["participant"]
            if p["actor"]["reference"].startswith("HealthcareService/")
        )
        params = verdict_parameters(OUTCOMES.get(entry, "surgery-not-recommended"), team=team)
        verdicts[entry] = client.post(f"/ServiceRequest/{case.referral_id}/$verdict", json=params)
    return Run(client, cases, verdicts)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_each_entry_point_is_booked_within_48_hours(run: Run, entry: str) -> None:
    appointment = _appointment(run.client, run.cases[entry].referral_id)
    within = {e["url"].rsplit("/", 1)[1]: e for e in appointment["extension"]}
    assert within["ivz-booking-within-48h"]["valueBoolean"] is True
    assert appointment["status"] == "fulfilled"  # the clinic's SIU S14 "Complete"


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_each_entry_points_results_attach_to_its_referral(run: Run, entry: str) -> None:
    found = _search(
        run.client,
        "/Observation",
        **{"based-on": f"ServiceRequest/{run.cases[entry].referral_id}", "code": "72514-3"},
    )
    assert [o["valueQuantity"]["value"] for o in found] == [6]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_each_entry_point_is_decided_by_verdict(run: Run, entry: str) -> None:
    answer = run.verdicts[entry]
    assert answer.status_code == 200, answer.text
    out = {p["name"]: p["resource"] for p in answer.json()["parameter"]}
    assert out["referral"]["status"] == "completed"
    coding = out["verdict"]["valueCodeableConcept"]["coding"][0]
    assert coding["code"] == OUTCOMES.get(entry, "surgery-not-recommended")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_each_case_shows_decided_in_its_pathway(run: Run, entry: str) -> None:
    bundle = run.client.get(f"/ServiceRequest/{run.cases[entry].referral_id}/$pathway").json()
    state = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
    assert state["state"]["valueCode"] == "decided"
    assert state["within48h"]["valueBoolean"] is True
    types = {e["resource"]["resourceType"] for e in bundle["entry"][1:]}
    assert {"ServiceRequest", "Patient", "Appointment", "Observation", "CarePlan"} <= types


def test_verdicts_are_found_by_search(run: Run) -> None:
    found = _search(run.client, "/Observation", code=f"{BASE}/CodeSystem/ivz-observation|verdict")
    assert sorted(o["basedOn"][0]["reference"] for o in found) == sorted(
        f"ServiceRequest/{c.referral_id}" for c in run.cases.values()
    )


def test_the_report_counts_the_three_cases(run: Run) -> None:
    report = run.client.get(
        str(run.client.base_url).rstrip("/").removesuffix("/fhir") + "/report/program.json"
    )
    figures = report.json()
    assert (figures["referrals"], figures["participants"]) == (3, 3)
    assert (figures["confirmed"], figures["not_confirmed"]) == (1, 2)
    assert figures["booked_within_48h_percent"] == 100.0

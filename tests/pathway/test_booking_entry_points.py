"""A referral from each entry point is booked at the nearest team within 48 hours."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from adapters.insurer.ingest import ingest
from fhir_server.service.resources import ResourceService
from tests.adapters.hl7v2.test_convert_ref import REFERRAL
from tests.adapters.insurer.helpers import sample
from tests.pathway.conftest import (
    add_slot,
    extension,
    live,
    patient,
    referral,
    search,
    slot_of,
    soon,
    teams_without_slots,
)

BERLIN = ZoneInfo("Europe/Berlin")


def _slots(service: ResourceService) -> dict[str, str]:
    teams_without_slots(service)
    return {
        team: add_slot(service, team, soon(hours))
        for team, hours in (("team-30", 2), ("team-01", 3), ("team-02", 4))
    }


def _referral_ids(service: ResourceService) -> list[str]:
    return [r["id"] for r in search(service, "ServiceRequest", ("intent", "order"))]


def test_an_insurer_export_row_is_booked_at_the_team_nearest_to_the_patient(
    pathway_service: ResourceService,
) -> None:
    slots = _slots(pathway_service)
    header, first = sample("tk.csv").decode("utf-8").splitlines()[:2]
    received = datetime.now(BERLIN).strftime("%Y-%m-%dT%H:%M:%S")
    row = first.replace("2024-03-04T09:12:00", received).replace("15.04.2024", "")
    report = ingest(pathway_service, f"{header}\n{row}\n".encode(), "tk")
    assert report.imported == 1, report
    (referral_id,) = _referral_ids(pathway_service)
    booked = live(pathway_service, referral_id)
    assert slot_of(booked) == slots["team-01"]  # PLZ 20095 Hamburg
    assert extension(booked, "ivz-booking-within-48h") is True


def test_a_fhir_post_to_the_server_is_booked(
    pathway_service: ResourceService, pathway_client: httpx.Client
) -> None:
    slots = _slots(pathway_service)
    made = pathway_client.post("/Patient", json=patient("24103"))
    posted = pathway_client.post("/ServiceRequest", json=referral(f"Patient/{made.json()['id']}"))
    assert posted.status_code == 201
    booked = live(pathway_service, posted.json()["id"])
    assert slot_of(booked) == slots["team-02"]


def test_an_hl7_ref_i12_over_http_is_booked(
    pathway_service: ResourceService, pathway_client: httpx.Client
) -> None:
    slots = _slots(pathway_service)
    today = datetime.now(BERLIN).strftime("%Y%m%d")
    raw = REFERRAL.replace(b"|20240312|", f"|{today}|".encode()).replace(
        b"|19640315|M", b"|19640315|M|||Hauptstra\xc3\x9fe 1^^M\xc3\xbcnchen^^80331^DE"
    )
    base = str(pathway_client.base_url).rstrip("/").removesuffix("/fhir")
    answer = httpx.post(
        f"{base}/hl7v2", content=raw, headers={"Content-Type": "application/hl7-v2"}, timeout=30
    )
    assert answer.status_code == 200 and b"MSA|AA" in answer.content, answer.text
    (referral_id,) = _referral_ids(pathway_service)
    assert slot_of(live(pathway_service, referral_id)) == slots["team-30"]

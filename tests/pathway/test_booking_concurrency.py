"""Concurrent referrals never share a Slot (row lock and re-check), on both databases."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from fhir_server.service.resources import ResourceService
from tests.pathway.conftest import (
    add_slot,
    appointments,
    patient,
    referral,
    search,
    slot_of,
    soon,
    teams_without_slots,
)

REFERRALS = 20
SLOTS = 8


def _slots(service: ResourceService) -> list[str]:
    teams_without_slots(service)
    teams = ["team-01", "team-02", "team-30", "team-06"]
    return [add_slot(service, teams[n % 4], soon(2 + n)) for n in range(SLOTS)]


def test_twenty_concurrent_referrals_book_eight_slots_once_each(
    pathway_service: ResourceService,
) -> None:
    slots = _slots(pathway_service)

    def one(n: int) -> str:
        pid = pathway_service.create("Patient", patient(f"{10 + n * 4:02d}000")).stored.id
        return pathway_service.create("ServiceRequest", referral(f"Patient/{pid}")).stored.id

    with ThreadPoolExecutor(REFERRALS) as pool:
        referral_ids = list(pool.map(one, range(REFERRALS)))
    booked = [a for r in referral_ids for a in appointments(pathway_service, r)]
    taken = Counter(slot_of(a) for a in booked)
    assert len(booked) == SLOTS
    assert set(taken) == set(slots) and set(taken.values()) == {1}
    busy = search(pathway_service, "Slot", ("status", "busy"))
    assert len(busy) == SLOTS


def test_concurrent_posts_to_the_server_never_double_book(
    pathway_service: ResourceService, pathway_client: httpx.Client
) -> None:
    slots = _slots(pathway_service)

    def one(n: int) -> str:
        made = pathway_client.post("/Patient", json=patient(f"{20 + n * 3:02d}000"))
        assert made.status_code == 201, made.text
        ref = f"Patient/{made.json()['id']}"
        posted = pathway_client.post("/ServiceRequest", json=referral(ref))
        assert posted.status_code == 201, posted.text
        return str(posted.json()["id"])

    with ThreadPoolExecutor(REFERRALS) as pool:
        referral_ids = list(pool.map(one, range(REFERRALS)))
    booked = [a for r in referral_ids for a in appointments(pathway_service, r)]
    assert sorted(slot_of(a) for a in booked) == sorted(slots)

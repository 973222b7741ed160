"""Automatic booking of second-opinion referrals (docs/pathway.md, "Booking"), service level."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.pathway.referral import parse_time
from fhir_server.service import transaction
from fhir_server.service.resources import ResourceService
from tests.pathway.conftest import (
    add_slot,
    appointments,
    extension,
    live,
    patient,
    read,
    referral,
    slot_of,
    soon,
    teams_without_slots,
)

BASE = "https://ivz-bridge.example/fhir"
BERLIN = ZoneInfo("Europe/Berlin")


def _case(
    service: ResourceService,
    postal_code: str | None = "24103",
    authored: datetime | str | None = None,
    status: str = "active",
) -> str:
    """Patient and referral written; the referral id."""
    pid = service.create("Patient", patient(postal_code)).stored.id
    return service.create("ServiceRequest", referral(f"Patient/{pid}", authored, status)).stored.id


def _start(appointment: dict[str, Any]) -> datetime:
    parsed = parse_time(appointment["start"])
    assert parsed is not None
    return parsed


def test_a_referral_is_booked_at_the_nearest_team_with_a_slot_within_48h(
    pathway_service: ResourceService,
) -> None:
    teams_without_slots(pathway_service)
    munich = add_slot(pathway_service, "team-30", soon(2))
    hamburg = add_slot(pathway_service, "team-01", soon(3))
    kiel = add_slot(pathway_service, "team-02", soon(30))
    booked = live(pathway_service, _case(pathway_service, "24103"))
    assert slot_of(booked) == kiel
    assert read(pathway_service, "Slot", kiel)["status"] == "busy"
    assert {read(pathway_service, "Slot", s)["status"] for s in (munich, hamburg)} == {"free"}


def test_the_nearest_team_gives_its_earliest_slot_in_the_window(
    pathway_service: ResourceService,
) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-02", soon(30))
    early = add_slot(pathway_service, "team-02", soon(5))
    assert slot_of(live(pathway_service, _case(pathway_service))) == early


def test_a_nearer_team_without_a_slot_in_time_gives_way_to_the_next_nearest(
    pathway_service: ResourceService,
) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-02", soon(60))
    hamburg = add_slot(pathway_service, "team-01", soon(40))
    add_slot(pathway_service, "team-30", soon(1))
    assert slot_of(live(pathway_service, _case(pathway_service, "24103"))) == hamburg


def test_the_appointment_has_the_contract_shape(pathway_service: ResourceService) -> None:
    teams_without_slots(pathway_service)
    kiel = add_slot(pathway_service, "team-02", soon(4))
    referral_id = _case(pathway_service)
    booked = live(pathway_service, referral_id)
    slot = read(pathway_service, "Slot", kiel)
    sr = read(pathway_service, "ServiceRequest", referral_id)
    assert booked["meta"]["profile"] == [f"{BASE}/StructureDefinition/ivz-appointment"]
    assert booked["basedOn"] == [{"reference": f"ServiceRequest/{referral_id}"}]
    assert (booked["start"], booked["end"]) == (slot["start"], slot["end"])
    assert booked["identifier"][0]["system"] == f"{BASE}/sid/appointment"
    actors = {p["actor"]["reference"] for p in booked["participant"]}
    assert actors == {sr["subject"]["reference"], "HealthcareService/team-02", "Location/team-02"}
    assert booked["serviceType"][0]["coding"][0]["code"] == "503"
    assert extension(booked, "ivz-booking-within-48h") is True
    written = parse_time(sr["meta"]["lastUpdated"])
    assert written is not None
    assert parse_time(extension(booked, "ivz-booking-deadline")) == written + timedelta(hours=48)


def test_without_a_slot_within_48h_the_earliest_slot_anywhere_is_booked_as_a_breach(
    pathway_service: ResourceService,
) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-02", soon(80))
    munich = add_slot(pathway_service, "team-30", soon(70))
    booked = live(pathway_service, _case(pathway_service))
    assert slot_of(booked) == munich
    assert extension(booked, "ivz-booking-within-48h") is False


def test_without_any_free_slot_the_referral_is_kept_unbooked_with_a_warning(
    pathway_service: ResourceService,
) -> None:
    teams_without_slots(pathway_service)
    pid = pathway_service.create("Patient", patient()).stored.id
    with pathway_service.unit() as unit:
        written = unit.create(referral(f"Patient/{pid}"))
    assert read(pathway_service, "ServiceRequest", written.stored.id)["status"] == "active"
    assert appointments(pathway_service, written.stored.id) == []
    assert any("not booked" in w for w in unit.warnings)


def test_the_window_opens_at_the_server_clock_for_a_referral_received_earlier(
    pathway_service: ResourceService,
) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-02", soon(-60))
    now_slot = add_slot(pathway_service, "team-02", soon(2))
    booked = live(pathway_service, _case(pathway_service, authored=soon(-72)))
    assert slot_of(booked) == now_slot
    assert extension(booked, "ivz-booking-within-48h") is False


def test_a_receipt_date_counts_from_local_midnight(pathway_service: ResourceService) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-02", soon(1))
    today = datetime.now(BERLIN).date()
    booked = live(pathway_service, _case(pathway_service, authored=today.isoformat()))
    midnight = datetime.combine(today, time(0), BERLIN)
    assert parse_time(extension(booked, "ivz-booking-deadline")) == midnight + timedelta(hours=48)


def test_a_patient_without_a_postal_code_gets_the_earliest_slot(
    pathway_service: ResourceService,
) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-02", soon(9))
    earliest = add_slot(pathway_service, "team-30", soon(8))
    assert slot_of(live(pathway_service, _case(pathway_service, postal_code=None))) == earliest


def test_a_referral_on_hold_is_booked_once_it_becomes_active(
    pathway_service: ResourceService,
) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-02", soon(3))
    referral_id = _case(pathway_service, status="on-hold")
    assert appointments(pathway_service, referral_id) == []
    held = read(pathway_service, "ServiceRequest", referral_id)
    pathway_service.update("ServiceRequest", referral_id, {**held, "status": "active"})
    assert live(pathway_service, referral_id)["status"] == "booked"


def test_an_update_of_a_booked_referral_books_nothing_more(
    pathway_service: ResourceService,
) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-02", soon(3))
    add_slot(pathway_service, "team-02", soon(4))
    referral_id = _case(pathway_service)
    sr = read(pathway_service, "ServiceRequest", referral_id)
    pathway_service.update("ServiceRequest", referral_id, {**sr, "priority": "urgent"})
    assert len(appointments(pathway_service, referral_id)) == 1


def test_a_plain_service_request_is_not_booked(pathway_service: ResourceService) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-02", soon(3))
    pid = pathway_service.create("Patient", patient()).stored.id
    plain = {**referral(f"Patient/{pid}"), "category": [], "reasonCode": []}
    del plain["category"], plain["reasonCode"]
    rid = pathway_service.create("ServiceRequest", plain).stored.id
    assert appointments(pathway_service, rid) == []


def test_a_transaction_bundle_books_its_referral_whatever_the_entry_order(
    pathway_service: ResourceService,
) -> None:
    teams_without_slots(pathway_service)
    add_slot(pathway_service, "team-30", soon(2))
    kiel = add_slot(pathway_service, "team-02", soon(3))
    patient_url = "urn:uuid:8d0bd1e6-76f7-4c49-9a3e-5d6b7e0c0a11"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0f0c8ef2-0b8a-4f4e-9f2e-3c1d2b4a5e66",
                "resource": referral(patient_url),
                "request": {"method": "POST", "url": "ServiceRequest"},
            },
            {
                "fullUrl": patient_url,
                "resource": {**patient("24103"), "id": "p-kiel"},
                "request": {"method": "PUT", "url": "Patient/p-kiel"},
            },
        ],
    }
    _, results = transaction.process(pathway_service, bundle, "")
    stored = results[0].stored
    assert stored is not None
    assert slot_of(live(pathway_service, stored.id)) == kiel

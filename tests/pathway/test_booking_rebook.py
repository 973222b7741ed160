"""Cancellations and no-shows (FHIR or HL7 SIU) free the Slot and book the referral again."""

from __future__ import annotations

from typing import Any

from adapters.hl7v2.convert import convert
from fhir_server.service import transaction
from fhir_server.service.resources import ResourceService
from tests.adapters.hl7v2 import message, segment
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


def _booked_case(service: ResourceService) -> tuple[str, dict[str, Any], list[str]]:
    """A referral booked at team-02 (Kiel) with two more Slots free; (id, appointment, slots)."""
    teams_without_slots(service)
    slots = [add_slot(service, "team-02", soon(h)) for h in (2, 5, 8)]
    pid = service.create("Patient", patient("24103")).stored.id
    rid = service.create("ServiceRequest", referral(f"Patient/{pid}")).stored.id
    booked = live(service, rid)
    assert slot_of(booked) == slots[0]
    return rid, booked, slots


def _set_status(service: ResourceService, appointment: dict[str, Any], status: str) -> None:
    body = {k: v for k, v in appointment.items() if k != "meta"}
    service.update("Appointment", appointment["id"], {**body, "status": status})


def _siu(trigger: str, number: str, status: str, start: str = "") -> bytes:
    """A clinic's SIU quoting the program's booking number in SCH-1 (``<number>^IVZ``)."""
    return message(
        f"MSH|^~\\&|TERMIN|KLINIK|IVZ|ZWEITMEINUNG|20261125101500||SIU^{trigger}|"
        f"S-{trigger}-{number}|P|2.5",
        segment(
            "SCH",
            {
                1: f"{number}^IVZ",
                9: "90",
                10: "min",
                11: f"^^90^{start}" if start else "",
                25: status,
            },
        ),
        segment("PID", {1: "1", 3: "X110411675^^^&1.2.276.0.76.4.8&ISO", 5: "Muster^Erika"}),
    )


def _apply(service: ResourceService, raw: bytes) -> None:
    transaction.process(service, convert(raw).bundle, "")


def test_a_cancelled_appointment_frees_its_slot_and_the_referral_is_booked_again(
    pathway_service: ResourceService,
) -> None:
    rid, booked, slots = _booked_case(pathway_service)
    _set_status(pathway_service, booked, "cancelled")
    assert read(pathway_service, "Slot", slots[0])["status"] == "free"
    again = live(pathway_service, rid)
    assert again["id"] != booked["id"]
    assert slot_of(again) == slots[1]


def test_a_new_booking_gets_a_deadline_48h_from_now(pathway_service: ResourceService) -> None:
    rid, booked, _ = _booked_case(pathway_service)
    _set_status(pathway_service, booked, "cancelled")
    again = live(pathway_service, rid)
    assert extension(again, "ivz-booking-deadline") > extension(booked, "ivz-booking-deadline")


def test_a_no_show_keeps_its_slot_busy_and_books_again(pathway_service: ResourceService) -> None:
    rid, booked, slots = _booked_case(pathway_service)
    _set_status(pathway_service, booked, "noshow")
    assert read(pathway_service, "Slot", slots[0])["status"] == "busy"
    assert slot_of(live(pathway_service, rid)) == slots[1]


def test_a_repeated_cancellation_books_only_once(pathway_service: ResourceService) -> None:
    rid, booked, _ = _booked_case(pathway_service)
    _set_status(pathway_service, booked, "cancelled")
    cancelled = read(pathway_service, "Appointment", booked["id"])
    _set_status(pathway_service, {**cancelled, "comment": "again"}, "cancelled")
    assert len(appointments(pathway_service, rid)) == 2


def test_a_siu_s15_quoting_the_booking_number_cancels_and_books_again(
    pathway_service: ResourceService,
) -> None:
    rid, booked, slots = _booked_case(pathway_service)
    _apply(pathway_service, _siu("S15", booked["identifier"][0]["value"], "Cancelled"))
    cancelled = read(pathway_service, "Appointment", booked["id"])
    assert cancelled["status"] == "cancelled"
    assert read(pathway_service, "Slot", slots[0])["status"] == "free"
    assert slot_of(live(pathway_service, rid)) == slots[1]


def test_a_siu_update_keeps_the_programs_slot_participants_and_referral(
    pathway_service: ResourceService,
) -> None:
    _, booked, _ = _booked_case(pathway_service)
    _apply(pathway_service, _siu("S15", booked["identifier"][0]["value"], "Cancelled"))
    cancelled = read(pathway_service, "Appointment", booked["id"])
    for key in ("basedOn", "slot", "start", "end", "serviceType"):
        assert cancelled[key] == booked[key], key
    assert booked["identifier"][0] in cancelled["identifier"]
    assert cancelled["meta"]["profile"] == booked["meta"]["profile"]
    assert all(p in cancelled["participant"] for p in booked["participant"])
    assert extension(cancelled, "ivz-booking-deadline") == extension(booked, "ivz-booking-deadline")


def test_a_siu_s26_no_show_books_again(pathway_service: ResourceService) -> None:
    rid, booked, slots = _booked_case(pathway_service)
    start = read(pathway_service, "Slot", slots[0])["start"]
    stamp = start[:19].replace("-", "").replace("T", "").replace(":", "")
    _apply(pathway_service, _siu("S26", booked["identifier"][0]["value"], "Noshow", stamp))
    assert read(pathway_service, "Appointment", booked["id"])["status"] == "noshow"
    assert slot_of(live(pathway_service, rid)) == slots[1]


def test_a_siu_s14_with_status_complete_fulfils_the_appointment(
    pathway_service: ResourceService,
) -> None:
    rid, booked, slots = _booked_case(pathway_service)
    start = read(pathway_service, "Slot", slots[0])["start"]
    stamp = start[:19].replace("-", "").replace("T", "").replace(":", "")
    _apply(pathway_service, _siu("S14", booked["identifier"][0]["value"], "Complete", stamp))
    done = read(pathway_service, "Appointment", booked["id"])
    assert done["status"] == "fulfilled"
    assert [a["id"] for a in appointments(pathway_service, rid)] == [booked["id"]]
    assert read(pathway_service, "Slot", slots[0])["status"] == "busy"


def test_a_siu_quoting_the_booking_number_as_filler_id_lands_on_the_booking(
    pathway_service: ResourceService,
) -> None:
    _, booked, _ = _booked_case(pathway_service)
    number = booked["identifier"][0]["value"]
    raw = _siu("S15", number, "Cancelled").replace(
        f"SCH|{number}^IVZ||".encode(), f"SCH|T-77^KLINIK|{number}^IVZ|".encode()
    )
    _apply(pathway_service, raw)
    assert read(pathway_service, "Appointment", booked["id"])["status"] == "cancelled"


def test_a_revoked_referral_cancels_its_booking_and_frees_the_slot(
    pathway_service: ResourceService,
) -> None:
    rid, booked, slots = _booked_case(pathway_service)
    doc = {k: v for k, v in read(pathway_service, "ServiceRequest", rid).items() if k != "meta"}
    pathway_service.update("ServiceRequest", rid, {**doc, "status": "revoked"})
    cancelled = read(pathway_service, "Appointment", booked["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"] == {"text": "Referral revoked"}
    assert read(pathway_service, "Slot", slots[0])["status"] == "free"
    assert [a["status"] for a in appointments(pathway_service, rid)] == ["cancelled"]

"""SIU: one Appointment per SCH id, moved, modified, cancelled and deleted by later events."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.hl7v2.convert import convert
from adapters.hl7v2.parse import split_messages
from tests.adapters.hl7v2 import (
    commit,
    message,
    new_service,
    one,
    reference,
    resources,
    sample,
    segment,
    stored,
)
from tests.adapters.hl7v2.test_convert_ref import REFERRAL


def booking(trigger: str, start: str = "20240320100000", status: str = "Booked") -> bytes:
    """The second-opinion consultation booked for referral ZM-2024-0042."""
    return message(
        f"MSH|^~\\&|TERMIN|ZWEITMEINUNG|IVZ|ZWEITMEINUNG|20240313101500||SIU^{trigger}|"
        f"S-{trigger}-{start}|P|2.5",
        segment(
            "SCH",
            {
                1: "T-1001^TERMIN",
                7: "ZM^Zweitmeinungsgespräch^L",
                9: "60",
                10: "min",
                11: f"^^60^{start}",
                25: status,
                26: "ZM-2024-0042^PRAXIS-MUELLER",
            },
        ),
        segment("PID", {1: "1", 3: "X110411675^^^&1.2.276.0.76.4.8&ISO", 5: "Mustermann^Max"}),
        "RGS|1|A",
        segment("AIL", {1: "1", 3: "ORTHO^Raum 3^^ZWEITMEINUNG", 4: "C^Clinic^HL70305"}),
        segment("AIP", {1: "1", 3: "987654321^Weber^Clara^^^Prof. Dr.", 4: "AP^Attending^HL70443"}),
    )


def appointment(raw: bytes) -> dict[str, object]:
    return one(convert(raw).bundle, "Appointment")


def test_s12_books_an_appointment_with_its_people_and_place() -> None:
    bundle = convert(booking("S12")).bundle
    booked = one(bundle, "Appointment")
    assert booked["status"] == "booked"
    assert (booked["start"], booked["end"]) == (
        "2024-03-20T10:00:00+01:00",
        "2024-03-20T11:00:00+01:00",
    )
    assert booked["minutesDuration"] == 60
    actors = {p["actor"]["reference"] for p in booked["participant"]}
    assert actors == {
        reference(one(bundle, "Patient")),
        reference(one(bundle, "Practitioner")),
        reference(one(bundle, "Location")),
    }
    assert all(p["status"] == "accepted" for p in booked["participant"])


def test_the_appointment_is_based_on_the_referral_it_serves() -> None:
    referral = convert(REFERRAL).bundle["entry"][1]["resource"]
    assert appointment(booking("S12"))["basedOn"] == [{"reference": reference(referral)}]


def test_s13_moves_the_same_appointment(tmp_path: Path) -> None:
    service = new_service(tmp_path)
    booked = convert(booking("S12")).bundle
    moved = convert(booking("S13", start="20240322140000")).bundle
    assert one(booked, "Appointment")["id"] == one(moved, "Appointment")["id"]
    commit(service, booked)
    commit(service, moved)
    version, stored_appointment = stored(service, reference(one(moved, "Appointment")))
    assert version == 2
    assert stored_appointment["start"] == "2024-03-22T14:00:00+01:00"


@pytest.mark.parametrize(
    ("trigger", "status"),
    [("S14", "booked"), ("S15", "cancelled"), ("S17", "entered-in-error"), ("S26", "noshow")],
)
def test_later_events_set_the_status_of_the_same_appointment(trigger: str, status: str) -> None:
    later = appointment(booking(trigger))
    assert later["status"] == status
    assert later["id"] == appointment(booking("S12"))["id"]


def test_the_filler_status_decides_when_the_event_does_not() -> None:
    assert appointment(booking("S14", status="Complete"))["status"] == "fulfilled"
    assert appointment(booking("S14", status="Started"))["status"] == "checked-in"


def test_the_corpus_s12_s13_s15_s26_are_one_appointment() -> None:
    names = ["S12-01", "S13-01", "S15-01", "S26-01"]
    found = [appointment(sample(f"SIU/msfc__SIU-{n}.hl7")) for n in names]
    assert len({a["id"] for a in found}) == 1
    assert [a["status"] for a in found] == ["booked", "booked", "cancelled", "noshow"]


def test_a_file_of_s12_s14_s15_ends_with_the_appointment_cancelled(tmp_path: Path) -> None:
    service = new_service(tmp_path)
    bundles = [
        convert(raw).bundle for raw in split_messages(sample("other/mirth__batch01_multi_SIU.hl7"))
    ]
    for bundle in bundles:
        commit(service, bundle)
    ref = reference(one(bundles[0], "Appointment"))
    version, last = stored(service, ref)
    # The S14 repeats the S12's content (no new version); the S15 cancels.
    assert (version, last["status"]) == (2, "cancelled")


def test_the_end_is_the_start_plus_the_duration_when_not_given() -> None:
    found = appointment(sample("SIU/gcphdh__siu_s12_ex1.hl7"))
    assert found["start"] == "2022-04-29T11:10:00+02:00"
    assert found["end"] == "2022-04-29T12:40:00+02:00"


def test_the_timing_segment_wins_over_the_deprecated_sch_11() -> None:
    found = appointment(sample("SIU/msfc__SIU-S12-01.hl7"))
    assert found["start"] == "2021-09-24T09:30:00+02:15"


def test_notes_in_a_scheduling_message_are_the_appointment_comment() -> None:
    found = appointment(sample("SIU/msfc__SIU-S12-01.hl7"))
    assert str(found["comment"]).startswith("Appointment booked for emergency procedure\n")


def test_the_service_booked_is_the_service_type() -> None:
    found = appointment(sample("SIU/msfc__SIU-S12-01.hl7"))
    assert found["serviceType"][0]["coding"][0]["code"] == "76164006"  # type: ignore[index]


def test_diagnoses_sent_with_a_booking_are_its_reasons() -> None:
    bundle = convert(sample("SIU/msfc__SIU-S12-01.hl7")).bundle
    assert one(bundle, "Appointment")["reasonReference"] == [
        {"reference": reference(c)} for c in resources(bundle, "Condition")
    ]

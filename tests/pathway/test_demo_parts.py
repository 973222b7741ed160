"""The demo's parts: cohort, export, messages, the simulated time and the clinic link."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta

import pytest

from adapters.hl7v2.convert import convert
from adapters.insurer import layout, reader
from adapters.insurer.validators import ik, kvnr
from fhir_server.demo.clinic import Clinic, ClinicError
from fhir_server.demo.clock import SimulatedClock
from fhir_server.demo.cohort import BERLIN, generate
from fhir_server.demo.export import COLUMNS, tk_csv
from fhir_server.demo.messages import Message, Visit, oru, siu
from fhir_server.demo.simulation import _conference, _feed_run
from fhir_server.pathway.booking import booking_id
from fhir_server.service.resources import ResourceService

FIRST, LAST = date(2026, 10, 5), date(2026, 11, 13)


def _visit(number: str = "0A1B2C3D4E5F") -> Visit:
    start = datetime(2026, 10, 6, 8, tzinfo=UTC)
    end = start + timedelta(minutes=90)
    return Visit("id", number, "team-07", "HealthcareService/team-07", start, end)


def test_the_same_seed_gives_the_same_people_whatever_the_calendar() -> None:
    one = generate(40, 3, FIRST, LAST)
    other = generate(40, 3, FIRST + timedelta(days=9), LAST + timedelta(days=30))
    assert [(c.kvnr, c.sex, c.confirmed) for c in one] == [
        (c.kvnr, c.sex, c.confirmed) for c in other
    ]
    assert generate(40, 4, FIRST, LAST)[0].kvnr != one[0].kvnr


def test_cases_are_valid_for_the_insurer_and_received_on_working_days() -> None:
    cases = generate(200, 5, FIRST, LAST)
    assert len({c.kvnr for c in cases}) == 200
    for case in cases:
        assert kvnr(case.kvnr) == case.kvnr
        assert ik(case.hospital_ik) == case.hospital_ik
        local = case.received.astimezone(BERLIN)
        assert FIRST <= local.date() <= LAST and local.weekday() < 5
        assert 8 <= local.hour < 17
    assert [c.received for c in cases] == sorted(c.received for c in cases)


def test_the_export_is_a_tk_file_the_adapter_reads_completely() -> None:
    cases = generate(5, 5, FIRST, LAST)
    spec = layout.load("tk")
    source = reader.read(tk_csv(cases), spec, None, None)
    assert source.delimiter == ";" and not source.warnings
    assert [r.values["Fallnummer"] for r in source.records] == [c.number for c in cases]
    assert set(source.records[0].values) == set(COLUMNS)


def test_a_clinic_siu_lands_on_the_booked_appointment() -> None:
    case = generate(1, 5, FIRST, LAST)[0]
    message = siu(case, _visit(), "S14", "Complete", datetime(2026, 10, 6, 10, tzinfo=UTC), 1)
    bundle = convert(message.raw).bundle
    [appointment] = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Appointment"
    ]
    assert appointment["id"] == booking_id("0A1B2C3D4E5F")
    assert appointment["status"] == "fulfilled"


def test_oru_results_name_the_patient_by_kvnr() -> None:
    case = generate(1, 5, FIRST, LAST)[0]
    bundle = convert(oru(case, _visit(), datetime(2026, 10, 6, 12, tzinfo=UTC)).raw).bundle
    resources = [e["resource"] for e in bundle["entry"]]
    [patient] = [r for r in resources if r["resourceType"] == "Patient"]
    assert {"system": "http://fhir.de/sid/gkv/kvid-10", "value": case.kvnr}.items() <= (
        patient["identifier"][0].items()
    )
    loinc = {
        c["code"]
        for r in resources
        if r["resourceType"] == "Observation"
        for c in r["code"]["coding"]
        if c.get("system") == "http://loinc.org"
    }
    assert loinc == {"72514-3", "97909-6", "44261-6", "70274-6"}


def test_the_simulated_clock_only_moves_forward() -> None:
    clock = SimulatedClock(datetime(2026, 10, 1, 12, 0, 0, 123456, tzinfo=UTC))
    assert clock() == datetime(2026, 10, 1, 12, 0, 0, 123000, tzinfo=UTC)
    clock.advance_to(datetime(2026, 9, 1, tzinfo=UTC))
    assert clock().month == 10
    assert clock.advance_to(datetime(2026, 10, 2, tzinfo=UTC)) == clock()


def test_feed_runs_and_case_conferences_follow_the_working_week() -> None:
    friday_morning = datetime(2026, 10, 9, 9, 30, tzinfo=BERLIN)
    assert _feed_run(friday_morning) == datetime(2026, 10, 9, 10, 0, tzinfo=BERLIN)
    friday_evening = datetime(2026, 10, 9, 18, 30, tzinfo=BERLIN)
    assert _feed_run(friday_evening) == datetime(2026, 10, 10, 10, 0, tzinfo=BERLIN)
    assert _conference(friday_morning) == datetime(2026, 10, 12, 14, 0, tzinfo=BERLIN)


def test_a_message_the_bridge_does_not_accept_stops_the_demo(
    pathway_service: ResourceService,
) -> None:
    raw = b"MSH|^~\\&|IVZ-TEAM|TEAM-07|IVZ-BRIDGE|IVZ|20261006100000||ZZZ^Z01|X-1|P|2.5\r"
    with Clinic(pathway_service) as clinic, pytest.raises(ClinicError, match="X-1: AR"):
        clinic.send(Message("X-1", raw))
    assert clinic.acks == {"AR": 1}


def test_the_clinic_messages_are_pinned_byte_for_byte() -> None:
    """The demo's messages are its fixture: a refactor of the builders must not move a byte."""
    cases = generate(20, 5, FIRST, LAST)
    message = siu(cases[0], _visit(), "S14", "Complete", datetime(2026, 10, 6, 10, tzinfo=UTC), 1)
    assert message.raw == (
        b"MSH|^~\\&|IVZ-TEAM|TEAM-07|IVZ-BRIDGE|IVZ|20261006120000+0200||SIU^S14^SIU_S12"
        b"|IVZ-DEMO-0001-SIU-1|P|2.5|||||DEU|UNICODE UTF-8"
        b"\rSCH|0A1B2C3D4E5F^IVZ|IVZ-DEMO-0001-1^TEAM-07|||||||90|min"
        b"|^^^20261006100000+0200^20261006113000+0200||||||||||||||Complete"
        b"\rPID|1||Y096545143^^^&1.2.276.0.76.4.8&ISO^KVZ10||Kowalski^Holger||19530813|M\r"
    )
    results = oru(cases[0], _visit(), datetime(2026, 10, 6, 12, tzinfo=UTC)).raw.split(b"\r")
    assert (
        results[2]
        == (
            "OBR|1|IVZ-DEMO-0001-A^TEAM-07|IVZ-DEMO-0001-A^TEAM-07"
            "|ZM-ASSESS^Interdisziplinäres Assessment^L|||20261006100000+0200"
            "|||||||||||||||20261006140000+0200|||F"
        ).encode()
    )
    assert (
        results[9]
        == (
            "OBX|7|CWE|exam-lasegue^Lasègue-Zeichen^IVZOBS||Y^Yes^HL70136"
            "||||||F|||20261006100000+0200"
        ).encode()
    )
    digest = hashlib.sha256()
    for case in cases:
        for status in ("Booked", "Complete"):
            when = datetime(2026, 7, 6, 10, tzinfo=UTC)
            digest.update(siu(case, _visit(), "S12", status, when, 2).raw)
        digest.update(oru(case, _visit(), datetime(2026, 1, 6, 12, tzinfo=UTC)).raw)
    assert digest.hexdigest() == "1765790a3a978dc744485298903c46648eab237c56b6880c68741591f7a9bc83"

"""ADT: PID to Patient, PV1 to Encounter, people to Practitioners; updates land on one id."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.hl7v2.convert import convert
from adapters.hl7v2.types import V2Error
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

KVNR_OID = "1.2.276.0.76.4.8"
LANR_OID = "1.2.276.0.76.4.16"


def adt(
    trigger: str, pid: dict[int, str] | None = None, pv1: dict[int, str] | None = None
) -> bytes:
    """A German hospital ADT message; tests change the fields they are about."""
    pid_fields = {
        1: "1",
        3: f"4711^^^KLINIKUM&1.2.276.0.76.3.1.99&ISO^MR~X110411675^^^&{KVNR_OID}&ISO",
        5: "Mustermann^Max^Otto^^Dr.^^L",
        7: "19640315",
        8: "M",
        11: "Musterweg 1^^Köln^^50667^DE^H",
        13: "^PRN^PH^^49^221^1234567~^NET^Internet^max@example.de",
    }
    pv1_fields = {
        1: "1",
        2: "O",
        3: "ORTHO^201^1^KLINIKUM",
        7: f"123456789^Schmidt^Anna^^^Dr. med.^^^&{LANR_OID}&ISO",
        19: "V0815^^^KLINIKUM^VN",
        44: "20240712093000",
    }
    return message(
        "MSH|^~\\&|HIS|KLINIKUM|IVZ|ZWEITMEINUNG|20240712093000||"
        f"ADT^{trigger}|ADT-{trigger}|P|2.5",
        f"EVN|{trigger}|20240712093000",
        segment("PID", {**pid_fields, **(pid or {})}),
        segment("PV1", {**pv1_fields, **(pv1 or {})}),
    )


def test_pid_becomes_a_patient_with_name_birth_date_gender_address_and_telecom() -> None:
    patient = one(convert(adt("A04")).bundle, "Patient")
    assert patient["name"] == [
        {"family": "Mustermann", "given": ["Max", "Otto"], "prefix": ["Dr."], "use": "official"}
    ]
    assert (patient["birthDate"], patient["gender"]) == ("1964-03-15", "male")
    assert patient["address"] == [
        {
            "line": ["Musterweg 1"],
            "city": "Köln",
            "postalCode": "50667",
            "country": "DE",
            "use": "home",
        }
    ]
    assert patient["telecom"] == [
        {"system": "phone", "use": "home", "value": "+49 221 1234567"},
        {"system": "email", "value": "max@example.de", "use": "home"},
    ]


def test_a_kvnr_with_its_oid_gets_the_kvid_10_system_and_type() -> None:
    patient = one(convert(adt("A04")).bundle, "Patient")
    kvnr = next(i for i in patient["identifier"] if i["value"] == "X110411675")
    assert kvnr["system"] == "http://fhir.de/sid/gkv/kvid-10"
    assert kvnr["type"]["coding"][0]["code"] == "KVZ10"


def test_an_unknown_oid_becomes_a_urn_oid_system() -> None:
    patient = one(convert(adt("A04")).bundle, "Patient")
    mr = next(i for i in patient["identifier"] if i["value"] == "4711")
    assert mr["system"] == "urn:oid:1.2.276.0.76.3.1.99"
    assert mr["type"]["coding"] == [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
            "code": "MR",
            "display": "Medical record number",
        }
    ]


def test_an_authority_without_oid_is_kept_as_the_assigner() -> None:
    raw = adt("A04", pid={3: "4711^^^KLINIKUM^MR"})
    [identifier] = one(convert(raw).bundle, "Patient")["identifier"]
    assert "system" not in identifier
    assert identifier["assigner"] == {"display": "KLINIKUM"}


def test_german_divers_is_other_with_the_official_gender_extension() -> None:
    patient = one(convert(adt("A04", pid={8: "D"})).bundle, "Patient")
    assert patient["gender"] == "other"
    [extension] = patient["_gender"]["extension"]
    assert extension["url"] == "http://fhir.de/StructureDefinition/gender-amtlich-de"
    assert extension["valueCoding"]["code"] == "D"


def test_local_times_get_the_berlin_offset_of_their_season() -> None:
    summer = one(convert(adt("A04")).bundle, "Encounter")
    winter = one(convert(adt("A04", pv1={44: "20240112093000"})).bundle, "Encounter")
    assert summer["period"]["start"] == "2024-07-12T09:30:00+02:00"
    assert winter["period"]["start"] == "2024-01-12T09:30:00+01:00"


def test_a_time_with_its_offset_keeps_it() -> None:
    encounter = one(convert(adt("A04", pv1={44: "202407120930-0500"})).bundle, "Encounter")
    assert encounter["period"]["start"] == "2024-07-12T09:30:00-05:00"


@pytest.mark.parametrize(("version", "code"), [("2.9", "203"), ("", "101")])
def test_a_version_we_do_not_read_is_rejected(version: str, code: str) -> None:
    raw = adt("A04").replace(b"|P|2.5\r", f"|P|{version}\r".encode())
    with pytest.raises(V2Error) as caught:
        convert(raw)
    assert (caught.value.reject, caught.value.code, caught.value.field_position) == (
        True,
        code,
        12,
    )


def test_pv1_becomes_the_patients_encounter() -> None:
    bundle = convert(adt("A04")).bundle
    encounter, patient = one(bundle, "Encounter"), one(bundle, "Patient")
    assert encounter["subject"] == {"reference": reference(patient)}
    assert encounter["class"]["code"] == "AMB"
    assert encounter["status"] == "planned"  # A04: the IG's event map
    assert encounter["identifier"][0]["value"] == "V0815"
    [location] = encounter["location"]
    assert one(bundle, "Location")["name"] == "ORTHO 201 1"
    assert location["location"] == {"reference": reference(one(bundle, "Location"))}


def test_the_attending_doctor_becomes_a_practitioner_with_her_lanr() -> None:
    bundle = convert(adt("A04")).bundle
    practitioner = one(bundle, "Practitioner")
    assert practitioner["identifier"][0]["system"] == (
        "https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR"
    )
    assert practitioner["name"] == [
        {"family": "Schmidt", "given": ["Anna"], "prefix": ["Dr. med."]}
    ]
    [participant] = one(bundle, "Encounter")["participant"]
    assert participant["individual"] == {"reference": reference(practitioner)}
    assert participant["type"][0]["coding"][0]["code"] == "ATND"


def test_a_discharge_finishes_the_encounter() -> None:
    encounter = one(convert(adt("A03", pv1={45: "20240714120000"})).bundle, "Encounter")
    assert encounter["status"] == "finished"
    assert encounter["period"]["end"] == "2024-07-14T12:00:00+02:00"


def test_a_person_update_with_a_pseudo_visit_makes_no_encounter() -> None:
    bundle = convert(adt("A31", pv1={2: "N"})).bundle
    assert resources(bundle, "Encounter") == []
    assert one(bundle, "Patient")["birthDate"] == "1964-03-15"


def test_diagnoses_become_conditions_of_the_encounter() -> None:
    bundle = convert(sample("ADT/msfc__ADT01-23.hl7")).bundle
    conditions = resources(bundle, "Condition")
    assert conditions
    encounter, patient = one(bundle, "Encounter"), one(bundle, "Patient")
    assert all(c["subject"] == {"reference": reference(patient)} for c in conditions)
    assert {d["condition"]["reference"] for d in encounter["diagnosis"]} == {
        reference(c) for c in conditions
    }


def test_an_a04_then_an_a08_update_the_same_patient(tmp_path: Path) -> None:
    service = new_service(tmp_path)
    registered = convert(sample("ADT/mirth__filereader_05_ADT_A04.hl7")).bundle
    updated = convert(sample("ADT/mirth__filereader_06_ADT_A08.hl7")).bundle
    assert one(registered, "Patient")["id"] == one(updated, "Patient")["id"]
    commit(service, registered)
    commit(service, updated)
    version, patient = stored(service, reference(one(updated, "Patient")))
    # This A08 repeats the A04's demographics: the same content stores no new version.
    assert version == 1
    assert patient["name"][0]["family"] == "MOUSE"


def test_an_update_changes_what_the_registration_said(tmp_path: Path) -> None:
    service = new_service(tmp_path)
    commit(service, convert(adt("A04")).bundle)
    moved = convert(adt("A08", pid={11: "Domplatz 3^^Köln^^50667^DE^H"})).bundle
    commit(service, moved)
    _, patient = stored(service, reference(one(moved, "Patient")))
    assert patient["address"][0]["line"] == ["Domplatz 3"]


def test_resending_a_message_changes_nothing(tmp_path: Path) -> None:
    service = new_service(tmp_path)
    first, again = convert(adt("A04")).bundle, convert(adt("A04")).bundle
    assert first == again
    commit(service, first)
    before = {
        reference(e["resource"]): stored(service, reference(e["resource"]))[1]
        for e in first["entry"]
    }
    commit(service, again)
    for ref, content in before.items():
        after = stored(service, ref)[1]
        assert {k: v for k, v in after.items() if k != "meta"} == {
            k: v for k, v in content.items() if k != "meta"
        }


def test_the_provenance_names_the_message_and_targets_every_resource() -> None:
    bundle = convert(adt("A04")).bundle
    provenance = one(bundle, "Provenance")
    others = {reference(e["resource"]) for e in bundle["entry"]} - {reference(provenance)}
    assert {t["reference"] for t in provenance["target"]} == others
    assert provenance["recorded"] == "2024-07-12T09:30:00+02:00"
    [entity] = provenance["entity"]
    assert entity["what"]["identifier"]["value"] == "ADT-A04"
    assert entity["what"]["identifier"]["assigner"] == {"display": "KLINIKUM"}


def test_the_provenance_of_a_facility_with_an_oid_uses_it_as_system() -> None:
    provenance = one(convert(sample("ADT/msfc__ADT-A01-02.hl7")).bundle, "Provenance")
    identifier = provenance["entity"][0]["what"]["identifier"]
    assert identifier == {"value": "MSG00001", "system": "urn:oid:2.16.840.1.122848.1.30"}

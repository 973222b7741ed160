"""Insurer exports into FHIR resources through the real service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import pytest

from adapters import identity
from adapters.insurer import resources, writer
from adapters.insurer.ingest import IngestError, ingest
from adapters.insurer.report import Report
from fhir_server.service.resources import ResourceService
from fhir_server.service.validation import validate_resource
from tests.adapters.insurer.helpers import Fresh, find, new_kvnr, one, read, referral, sample

TK_IK = "101575519"
AOK_IK = "109308215"
KVNR = "http://fhir.de/sid/gkv/kvid-10"


def _import(service: ResourceService, data: bytes, layout: str = "tk", **kw: Any) -> Report:
    return ingest(service, data, layout, **kw)


def _tk(service: ResourceService) -> tuple[Fresh, Report]:
    fresh = Fresh()
    return fresh, _import(service, fresh(sample("tk.csv")))


def _group(service: ResourceService, sr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The referral and every resource it reaches, by reference."""
    refs = [
        sr["subject"]["reference"],
        sr["requester"]["reference"],
        sr["insurance"][0]["reference"],
        sr["supportingInfo"][0]["reference"],
        *(r["reference"] for r in sr["reasonReference"]),
    ]
    group = {f"ServiceRequest/{sr['id']}": sr}
    group |= {ref: read(service, ref) for ref in refs}
    proposal = group[sr["supportingInfo"][0]["reference"]]
    for key in ("requester",):
        if "reference" in proposal.get(key, {}):
            ref = proposal[key]["reference"]
            group[ref] = read(service, ref)
    for performer in proposal.get("performer", []):
        if "reference" in performer:
            group[performer["reference"]] = read(service, performer["reference"])
    for consent in find(service, "Consent", f"patient={sr['subject']['reference']}"):
        group[f"Consent/{consent['id']}"] = consent
    return group


def _versions(group: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {ref: res["meta"]["versionId"] for ref, res in group.items()}


def test_tk_csv_imports_every_referral(service: ResourceService) -> None:
    fresh, report = _tk(service)
    assert (report.rows, report.imported, report.rejected) == (4, 4, 0)
    assert report.errors == []
    sr = referral(service, TK_IK, fresh.case("TK-2024-0001"))
    assert sr["intent"] == "order" and sr["status"] == "active"


def test_patient_has_kvnr_kvz10_official_name_birth_date_address_and_telecom(
    service: ResourceService,
) -> None:
    fresh, _ = _tk(service)
    kvnr = fresh.kvnrs["A123456780"]
    patient = one(service, "Patient", f"identifier={KVNR}|{kvnr}")
    assert patient["identifier"] == [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://fhir.de/CodeSystem/identifier-type-de-basis",
                        "code": "KVZ10",
                    }
                ]
            },
            "system": KVNR,
            "value": kvnr,
        }
    ]
    assert patient["name"] == [{"use": "official", "family": "Müller", "given": ["Anna", "Maria"]}]
    assert (patient["gender"], patient["birthDate"]) == ("female", "1964-08-12")
    # address and telecoms marked as the insurer's (docs/insurer-adapter.md, "Merge policy")
    mark = [{"url": identity.SOURCE_URL, "valueCode": "insurer"}]
    assert patient["address"] == [
        {
            "use": "home",
            "type": "both",
            "city": "Hamburg",
            "postalCode": "20095",
            "country": "DE",
            "extension": mark,
        }
    ]
    assert patient["telecom"] == [
        {"system": "phone", "value": "040 30601234", "use": "home", "extension": mark},
        {"system": "email", "value": "anna.mueller@example.de", "use": "home", "extension": mark},
    ]


@pytest.mark.parametrize(
    ("original", "gender", "code"), [("M345678909", "other", "D"), ("T456789017", "unknown", "X")]
)
def test_sex_d_and_x_become_other_and_unknown_with_gender_amtlich_de(
    service: ResourceService, original: str, gender: str, code: str
) -> None:
    fresh, _ = _tk(service)
    patient = one(service, "Patient", f"identifier={KVNR}|{fresh.kvnrs[original]}")
    assert patient["gender"] == gender
    (extension,) = patient["_gender"]["extension"]
    assert extension["url"] == "http://fhir.de/StructureDefinition/gender-amtlich-de"
    assert extension["valueCoding"]["system"] == "http://fhir.de/CodeSystem/gender-amtlich-de"
    assert extension["valueCoding"]["code"] == code


def test_coverage_is_gkv_with_payor_ik_and_kvnr_as_subscriber_id(
    service: ResourceService,
) -> None:
    fresh, _ = _tk(service)
    sr = referral(service, TK_IK, fresh.case("TK-2024-0001"))
    coverage = read(service, sr["insurance"][0]["reference"])
    assert coverage["type"]["coding"] == [
        {"system": "http://fhir.de/CodeSystem/versicherungsart-de-basis", "code": "GKV"}
    ]
    assert coverage["subscriberId"] == fresh.kvnrs["A123456780"]
    assert coverage["beneficiary"] == sr["subject"]
    (payor,) = coverage["payor"]
    assert payor["identifier"]["system"] == "http://fhir.de/sid/arge-ik/iknr"
    assert payor["identifier"]["value"] == TK_IK
    insurer = read(service, payor["reference"])
    assert insurer["name"] == "Techniker Krankenkasse"
    assert insurer["identifier"][0]["value"] == TK_IK


def test_each_diagnosis_is_a_condition_with_icd10gm_and_version(service: ResourceService) -> None:
    fresh, _ = _tk(service)
    sr = referral(service, TK_IK, fresh.case("TK-2024-0003"))
    conditions = [read(service, r["reference"]) for r in sr["reasonReference"]]
    assert [c["code"]["coding"] for c in conditions] == [
        [{"system": "http://fhir.de/CodeSystem/bfarm/icd-10-gm", "version": "2024", "code": c}]
        for c in ("M51.1", "M54.4", "F45.41")
    ]
    assert all(c["subject"] == sr["subject"] for c in conditions)


def test_proposed_surgery_is_a_proposal_with_ops_surgeon_lanr_and_hospital_ik(
    service: ResourceService,
) -> None:
    fresh, _ = _tk(service)
    sr = referral(service, TK_IK, fresh.case("TK-2024-0001"))
    proposal = read(service, sr["supportingInfo"][0]["reference"])
    assert (proposal["intent"], proposal["status"]) == ("proposal", "active")
    assert proposal["code"] == {
        "coding": [
            {"system": "http://fhir.de/CodeSystem/bfarm/ops", "version": "2024", "code": "5-836.30"}
        ],
        "text": "Spondylodese: Dorsal: 1 Segment",
    }
    assert proposal["occurrenceDateTime"] == "2024-04-15"
    surgeon = read(service, proposal["requester"]["reference"])
    assert surgeon["identifier"][0]["system"] == "https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR"
    assert surgeon["identifier"][0]["value"] == "123456601"
    hospital = read(service, proposal["performer"][0]["reference"])
    assert hospital["identifier"][0]["value"] == "260326822"
    assert hospital["name"] == "Klinik Nord Hamburg"


def test_referral_is_a_second_opinion_order_linked_to_conditions_proposal_and_coverage(
    service: ResourceService,
) -> None:
    fresh, _ = _tk(service)
    case = fresh.case("TK-2024-0001")
    sr = referral(service, TK_IK, case)
    assert sr["identifier"] == [
        {"system": f"https://ivz-bridge.example/sid/referral/{TK_IK}", "value": case}
    ]
    assert sr["category"][0]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "3457005",
        "display": "Patient referral",
    }
    assert sr["reasonCode"][0]["coding"][0]["code"] == "S"
    assert sr["reasonCode"][0]["coding"][0]["system"] == (
        "http://terminology.hl7.org/CodeSystem/v2-0336"
    )
    assert len(sr["reasonReference"]) == 2
    assert sr["supportingInfo"][0]["reference"].startswith("ServiceRequest/")
    assert sr["insurance"][0]["reference"].startswith("Coverage/")
    assert read(service, sr["requester"]["reference"])["identifier"][0]["value"] == TK_IK
    assert sr["authoredOn"] == "2024-03-04T09:12:00+01:00"
    assert sr["note"] == [{"text": "Patientin wünscht Termin vormittags; Rückruf erbeten"}]


def test_consent_ja_is_an_active_permit_consent(service: ResourceService) -> None:
    fresh, _ = _tk(service)
    sr = referral(service, TK_IK, fresh.case("TK-2024-0001"))
    (consent,) = find(service, "Consent", f"patient={sr['subject']['reference']}")
    assert consent["status"] == "active"
    assert consent["scope"]["coding"][0]["code"] == "patient-privacy"
    assert consent["category"][0]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "59284-0",
        "display": "Patient Consent",
    }
    assert consent["provision"]["type"] == "permit"
    assert consent["provision"]["data"][0]["reference"]["reference"] == f"ServiceRequest/{sr['id']}"
    assert consent["policyRule"]["coding"][0]["code"] == "OPTIN"


def test_consent_nein_puts_the_referral_on_hold_with_a_rejected_consent(
    service: ResourceService,
) -> None:
    fresh, _ = _tk(service)
    sr = referral(service, TK_IK, fresh.case("TK-2024-0002"))
    assert sr["status"] == "on-hold"
    (reason,) = sr["extension"]
    assert reason["url"] == "http://hl7.org/fhir/StructureDefinition/request-statusReason"
    assert reason["valueCodeableConcept"]["coding"][0]["code"] == "consent-refused"
    (consent,) = find(service, "Consent", f"patient={sr['subject']['reference']}")
    assert (consent["status"], consent["provision"]["type"]) == ("rejected", "deny")


def test_missing_consent_puts_the_referral_on_hold_without_a_consent(
    service: ResourceService,
) -> None:
    fresh, _ = _tk(service)
    sr = referral(service, TK_IK, fresh.case("TK-2024-0003"))
    assert sr["status"] == "on-hold"
    assert sr["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "consent-missing"
    assert find(service, "Consent", f"patient={sr['subject']['reference']}") == []


def test_every_written_resource_validates(service: ResourceService) -> None:
    fresh, _ = _tk(service)
    for case in ("TK-2024-0001", "TK-2024-0002", "TK-2024-0003", "TK-2024-0004"):
        for res in _group(service, referral(service, TK_IK, fresh.case(case))).values():
            body = {k: v for k, v in res.items() if k != "meta"}
            assert validate_resource(body, res["resourceType"])


def test_aok_layout_imports_latin9_comma_file(service: ResourceService) -> None:
    fresh = Fresh()
    report = _import(service, fresh(sample("aok.csv"), "iso-8859-15"), "aok")
    assert (report.encoding, report.delimiter, report.imported) == ("iso-8859-15", ",", 2)
    sr = referral(service, AOK_IK, fresh.case("AOK-77120"))
    patient = read(service, sr["subject"]["reference"])
    assert patient["name"][0]["family"] == "Šubert"
    assert patient["birthDate"] == "1971-06-07"
    assert patient["address"][0]["postalCode"] == "04109"
    assert len(sr["reasonReference"]) == 2
    assert sr["status"] == "active"
    assert referral(service, AOK_IK, fresh.case("AOK-77121"))["status"] == "on-hold"


@pytest.mark.parametrize(
    ("name", "encoding", "prefix"),
    [
        ("tk.json", "utf-8", b""),
        ("tk.jsonl", "utf-8", b""),
        ("tk_windows1252.csv", "cp1252", b""),
        ("tk.csv", "utf-8", codecs.BOM_UTF8),
    ],
)
def test_other_formats_and_encodings_yield_exactly_the_csv_resources(
    service: ResourceService, name: str, encoding: str, prefix: bytes
) -> None:
    fresh = Fresh()
    first = _import(service, fresh(sample("tk.csv")))
    assert first.imported == 4
    again = _import(service, prefix + fresh(sample(name), encoding))
    assert (again.rows, again.unchanged, again.resources_created, again.resources_updated) == (
        4,
        4,
        0,
        0,
    )


def test_reimport_changes_nothing_and_creates_no_versions(service: ResourceService) -> None:
    fresh = Fresh()
    data = fresh(sample("tk.csv"))
    _import(service, data)
    sr = referral(service, TK_IK, fresh.case("TK-2024-0001"))
    before = _versions(_group(service, sr))
    report = _import(service, data)
    assert (report.unchanged, report.resources_created, report.resources_updated) == (4, 0, 0)
    assert _versions(_group(service, referral(service, TK_IK, fresh.case("TK-2024-0001")))) == (
        before
    )


def test_shared_resources_found_in_one_unit_are_reused_by_the_next(
    service: ResourceService,
) -> None:
    _import(service, Fresh()(sample("tk.csv")))  # the insurer and hospitals now exist
    report = _import(service, Fresh()(sample("tk.csv")), batch_size=2)
    assert (report.imported, report.warnings) == (4, [])


def test_reimport_one_referral_per_transaction_changes_nothing_either(
    service: ResourceService,
) -> None:
    fresh = Fresh()
    data = fresh(sample("tk.csv"))
    _import(service, data, batch_size=1)
    report = _import(service, data, batch_size=1)
    assert (report.unchanged, report.resources_created, report.resources_updated) == (4, 0, 0)


def test_corrected_row_updates_its_resources_and_retires_a_dropped_diagnosis(
    service: ResourceService,
) -> None:
    fresh = Fresh()
    data = fresh(sample("tk.csv"))
    _import(service, data)
    case = fresh.case("TK-2024-0001")
    old = referral(service, TK_IK, case)
    dropped = old["reasonReference"][1]["reference"]
    corrected = data.replace(b'"M51.2;M54.5";5-836.30', b"M51.2;5-836.40", 1)
    report = _import(service, corrected)
    assert (report.updated, report.unchanged) == (1, 3)
    new = referral(service, TK_IK, case)
    assert new["meta"]["versionId"] == "2"
    assert [r["reference"] for r in new["reasonReference"]] == [
        old["reasonReference"][0]["reference"]
    ]
    proposal = read(service, new["supportingInfo"][0]["reference"])
    assert proposal["code"]["coding"][0]["code"] == "5-836.40"
    retired = read(service, dropped)
    assert retired["verificationStatus"]["coding"][0]["code"] == "entered-in-error"
    assert "clinicalStatus" not in retired
    assert _import(service, corrected).unchanged == 4


def test_existing_patient_with_the_same_kvnr_is_updated_not_duplicated(
    service: ResourceService,
) -> None:
    fresh = Fresh()
    kvnr = new_kvnr()
    fresh.kvnrs["A123456780"] = kvnr
    hospital_mr = {"system": "https://klinik.example/sid/patient", "value": "MR-4711"}
    existing = service.create(
        "Patient",
        {
            "resourceType": "Patient",
            "identifier": [hospital_mr, {"system": KVNR, "value": kvnr}],
            "name": [{"family": "Mueller", "given": ["Anna"]}],
            "gender": "female",
            "birthDate": "1964-08-12",
        },
    ).stored
    report = _import(service, fresh(sample("tk.csv")))
    assert report.imported == 4
    (patient,) = find(service, "Patient", f"identifier={KVNR}|{kvnr}")
    assert patient["id"] == existing.id
    assert patient["meta"]["versionId"] == "2"
    assert patient["name"][0]["family"] == "Müller"
    assert hospital_mr in patient["identifier"]
    sr = referral(service, TK_IK, fresh.case("TK-2024-0001"))
    assert sr["subject"]["reference"] == f"Patient/{existing.id}"


def test_existing_patient_is_also_found_with_one_search_per_kvnr(
    service: ResourceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "_SLOW_PER_VALUE", 0.0)  # any list search counts as slow
    fresh = Fresh()
    kvnr = new_kvnr()
    fresh.kvnrs["M345678909"] = kvnr  # row 3: in the second unit, after the switch
    body = {"resourceType": "Patient", "identifier": [{"system": KVNR, "value": kvnr}]}
    existing = service.create("Patient", body).stored
    report = _import(service, fresh(sample("tk.csv")), batch_size=2)
    assert report.imported == 4
    (patient,) = find(service, "Patient", f"identifier={KVNR}|{kvnr}")
    assert patient["id"] == existing.id
    sr = referral(service, TK_IK, fresh.case("TK-2024-0003"))
    assert sr["subject"]["reference"] == f"Patient/{existing.id}"


def test_a_unit_that_fails_is_retried_one_referral_at_a_time(service: ResourceService) -> None:
    fresh = Fresh()
    condition_id = resources.stable_id("Condition", TK_IK, fresh.case("TK-2024-0001"), "M51.2")
    body = {"resourceType": "Condition", "id": condition_id, "subject": {"reference": "Patient/x"}}
    service.update("Condition", condition_id, body)
    service.delete("Condition", condition_id)  # invisible to search, but its id is taken
    report = _import(service, fresh(sample("tk.csv")))
    assert (report.imported, report.rejected) == (4, 0)
    assert len(report.warnings) == 1 and "res_type" in report.warnings[0].reason
    condition = read(service, f"Condition/{condition_id}")
    assert (condition["meta"]["versionId"], condition["code"]["coding"][0]["code"]) == (
        "3",
        "M51.2",
    )


def test_kvnr_carried_by_two_patients_rejects_the_row(service: ResourceService) -> None:
    fresh = Fresh()
    kvnr = new_kvnr()
    fresh.kvnrs["A123456780"] = kvnr
    for _ in range(2):
        body = {"resourceType": "Patient", "identifier": [{"system": KVNR, "value": kvnr}]}
        service.create("Patient", body)
    report = _import(service, fresh(sample("tk.csv")))
    assert (report.imported, report.rejected) == (3, 1)
    (error,) = report.errors
    assert (error.row, error.field, error.value) == (1, "KVNR", kvnr)
    assert error.reason.startswith("2 Patient resources already carry this identifier")


def test_bad_rows_are_reported_with_row_field_value_and_reason(service: ResourceService) -> None:
    fresh = Fresh(kvnrs=False)
    report = _import(service, fresh(sample("tk_errors.csv")))
    case = fresh.case
    assert (report.rows, report.imported, report.rejected) == (9, 1, 8)
    assert [(e.row, e.line, e.referral_id, e.field, e.value, e.reason) for e in report.errors] == [
        (2, 3, case("TK-E-0002"), "KVNR", "A123456781", "KVNR check digit is 1, expected 0"),
        (3, 4, case("TK-E-0003"), "IK_Kasse", "101575518", "IK check digit is 8, expected 9"),
        (
            4,
            5,
            case("TK-E-0004"),
            "Diagnosen_ICD10GM",
            "M51.2;M5.12",
            "'M5.12' is not an ICD-10-GM code (e.g. M51.2)",
        ),
        (
            4,
            5,
            case("TK-E-0004"),
            "OPS_Code",
            "5836.30",
            "'5836.30' is not an OPS code (e.g. 5-836.30)",
        ),
        (4, 5, case("TK-E-0004"), "Operateur_LANR", "12345", "LANR must be exactly 9 digits"),
        (
            5,
            6,
            case("TK-E-0005"),
            "Geburtsdatum",
            "31.02.1970",
            "not a date in a known format (%Y-%m-%d, %d.%m.%Y)",
        ),
        (5, 6, case("TK-E-0005"), "Geschlecht", "q", "unknown code (this layout knows d, m, w, x)"),
        (5, 6, case("TK-E-0005"), "PLZ", "1234", "postal code must be 5 digits"),
        (5, 6, case("TK-E-0005"), "EMail", "ute(at)example.de", "not an e-mail address"),
        (
            5,
            6,
            case("TK-E-0005"),
            "Einwilligung",
            "vielleicht",
            "unknown code (this layout knows ja, nein)",
        ),
        (6, 7, case("TK-E-0006"), "Eingangsdatum", "gestern", "not a date-time in a known format"),
        (6, 7, case("TK-E-0006"), "Nachname", "", "required"),
        (6, 7, case("TK-E-0006"), "Diagnosen_ICD10GM", "", "required"),
        (6, 7, case("TK-E-0006"), "OPS_Code", "", "required"),
        (
            7,
            8,
            case("TK-E-0001"),
            "Fallnummer",
            case("TK-E-0001"),
            "duplicate referral id in this file (first in row 1)",
        ),
        (8, 9, case("TK-E-0008"), "-", "", "7 fields where the header has 23 (line 9)"),
        (9, 10, case("TK-E-0009"), "Klinik_IK", "260340525", "IK check digit is 5, expected 4"),
        (
            9,
            10,
            case("TK-E-0009"),
            "Geburtsdatum",
            "2025-07-21",
            "birth date after the referral was received",
        ),
    ]
    assert referral(service, TK_IK, case("TK-E-0001"))["status"] == "active"


def test_error_report_csv_has_a_header_and_one_line_per_problem(service: ResourceService) -> None:
    report = _import(service, Fresh(kvnrs=False)(sample("tk_errors.csv")))
    lines = report.errors_csv().splitlines()
    assert lines[0] == "row;line;referral_id;field;value;reason"
    assert len(lines) == 1 + len(report.errors)
    assert '"M51.2;M5.12"' in lines[3]


def test_patient_named_by_two_referrals_takes_the_latest_data_and_warns(
    service: ResourceService,
) -> None:
    fresh = Fresh()
    data = fresh(sample("tk.csv")).decode()
    # Referral 4 (received last) names the patient of referral 1 with a new phone number.
    data = data.replace(fresh.kvnrs["T456789017"], fresh.kvnrs["A123456780"])
    report = _import(service, data.encode())
    assert report.imported == 4
    warning = next(w for w in report.warnings if w.row == 1)
    assert warning.field == "KVNR" and "differs from row 4" in warning.reason
    (patient,) = find(service, "Patient", f"identifier={KVNR}|{fresh.kvnrs['A123456780']}")
    assert patient["name"][0]["family"] == "Weiß"
    assert _import(service, data.encode()).unchanged == 4


THIRD_LAYOUT = """\
layout: barmer
title: A third insurer, added with nothing but this file
source:
  encodings: [utf-8, cp1252]
  delimiter: "\\t"
  date_formats: ["%d.%m.%Y"]
  datetime_formats: ["%d.%m.%Y %H:%M"]
columns:
  Vorgang: referral.identifier
  Datum: referral.authoredOn
  Versichertennr: Patient.identifier:KVNR
  Name: Patient.name.family
  Vorname: Patient.name.given
  Geb: Patient.birthDate
  Sex: Patient.gender
  ICD: Condition.code:ICD-10-GM
  OPS: proposal.code:OPS
  Zustimmung: Consent.provision.type
constants:
  Coverage.payor:IK: "109308215"
  Coverage.payor.display: Test-Ersatzkasse
values:
  Patient.gender: {"1": M, "2": W, "3": D, "4": X}
  Consent.provision.type: {J: permit, N: deny}
codes:
  icd10gm: "2023"
  ops: "2023"
"""


def test_a_new_insurer_needs_only_a_mapping_file(service: ResourceService, tmp_path: Path) -> None:
    (tmp_path / "barmer.yaml").write_text(THIRD_LAYOUT, encoding="utf-8")
    fresh = Fresh()
    kvnr = new_kvnr()
    case = f"BK-{fresh.tag}-1"
    data = (
        "Vorgang\tDatum\tVersichertennr\tName\tVorname\tGeb\tSex\tICD\tOPS\tZustimmung\r\n"
        f"{case}\t01.02.2024 13:00\t{kvnr}\tGroß\tOle\t09.09.1961\t3\tM51.2 M54.5\t5-83b.50\tJ\r\n"
    ).encode("cp1252")
    report = _import(service, data, "barmer", mapping_dir=tmp_path)
    assert (report.layout, report.encoding, report.delimiter, report.imported) == (
        "barmer",
        "cp1252",
        "\t",
        1,
    )
    sr = referral(service, "109308215", case)
    patient = read(service, sr["subject"]["reference"])
    assert (patient["name"][0]["family"], patient["gender"]) == ("Groß", "other")
    condition = read(service, sr["reasonReference"][0]["reference"])
    assert condition["code"]["coding"][0]["version"] == "2023"
    assert sr["authoredOn"] == "2024-02-01T13:00:00+01:00"


def test_unknown_layout_refuses_the_file(service: ResourceService) -> None:
    with pytest.raises(IngestError, match="no layout 'ersatzkasse'"):
        _import(service, sample("tk.csv"), "ersatzkasse")


def test_file_of_another_layout_is_refused_as_a_whole(service: ResourceService) -> None:
    with pytest.raises(IngestError, match="the header lacks the columns"):
        _import(service, sample("aok.csv"), "tk")


def test_progress_reaches_the_row_count(service: ResourceService) -> None:
    seen: list[tuple[int, int]] = []
    _import(
        service, Fresh()(sample("tk.csv")), progress=lambda done, total: seen.append((done, total))
    )
    assert seen[-1] == (4, 4)

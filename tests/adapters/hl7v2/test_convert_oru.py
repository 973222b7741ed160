"""ORU^R01: orders, reports and one Observation per OBX, typed by OBX-2; results update."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from adapters.hl7v2.convert import convert
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

HEADER = (
    "MSH|^~\\&|LIS|LABOR^1.2.276.0.76.3.1.7^ISO|IVZ|ZM|20240312093000||ORU^R01^ORU_R01|L1|P|2.5.1"
)
PID = "PID|1||4711^^^KLINIKUM^MR||Mustermann^Max||19640315|M"
ORC = "ORC|RE|P-100^KIS|F-200^LIS||CM"
OBR = segment(
    "OBR",
    {
        1: "1",
        2: "P-100^KIS",
        3: "F-200^LIS",
        4: "24331-1^Lipid panel^LN",
        7: "20240311080000",
        22: "20240312090000",
        25: "F",
    },
)


def obx(value_type: str, value: str, **fields: str) -> str:
    base = {
        1: "1",
        2: value_type,
        3: fields.pop("code", "2093-3^Cholesterol^LN"),
        5: value,
        11: fields.pop("status", "F"),
    }
    extra = {int(k[1:]): v for k, v in fields.items()}
    return segment("OBX", {**base, **extra})


def observe(*segments: str) -> dict[str, Any]:
    """The single Observation converted from an ORU holding these OBX (and NTE) segments."""
    bundle = convert(message(HEADER, PID, ORC, OBR, *segments)).bundle
    return one(bundle, "Observation")


def test_a_numeric_result_is_a_quantity_with_its_ucum_unit() -> None:
    observation = observe(obx("NM", "187", f6="mg/dL^^UCUM", f7="<200", f8="N"))
    assert observation["valueQuantity"] == {
        "value": Decimal("187"),
        "unit": "mg/dL",
        "system": "http://unitsofmeasure.org",
        "code": "mg/dL",
    }
    assert observation["referenceRange"][0]["high"]["value"] == Decimal("200")
    assert observation["interpretation"][0]["coding"][0]["code"] == "N"


def test_a_common_spelling_of_a_ucum_unit_gets_its_ucum_code() -> None:
    observation = observe(obx("NM", "4.20", f6="mmol/l"))
    assert observation["valueQuantity"] == {
        "value": Decimal("4.20"),
        "unit": "mmol/l",
        "system": "http://unitsofmeasure.org",
        "code": "mmol/L",
    }


def test_a_unit_that_is_not_ucum_stays_text() -> None:
    observation = observe(obx("NM", "7", f6="Pkt."))
    assert observation["valueQuantity"] == {"value": Decimal("7"), "unit": "Pkt."}


def test_german_lab_units_are_recognised() -> None:
    observation = observe(obx("NM", "221", f6="Gpt/l"))
    assert observation["valueQuantity"]["code"] == "10*9/L"


def test_a_comparator_written_into_a_number_is_kept() -> None:
    assert observe(obx("NM", "<0.10", f6="kU/L"))["valueQuantity"]["comparator"] == "<"


def test_a_number_that_is_none_falls_back_to_text_with_a_warning() -> None:
    conversion = convert(message(HEADER, PID, ORC, OBR, obx("NM", "see comment")))
    assert one(conversion.bundle, "Observation")["valueString"] == "see comment"
    assert any("not a number" in w for w in conversion.warnings)


def test_string_results_are_strings() -> None:
    assert observe(obx("ST", "positive"))["valueString"] == "positive"


def test_text_result_repetitions_are_lines() -> None:
    assert observe(obx("TX", "line one~line two"))["valueString"] == "line one\nline two"


def test_formatted_text_line_breaks_are_newlines() -> None:
    observation = observe(obx("FT", "Befund:\\.br\\unauffällig"))
    assert observation["valueString"] == "Befund:\nunauffällig"


def test_a_coded_result_is_a_codeable_concept() -> None:
    observation = observe(obx("CWE", "260385009^Negative^SCT"))
    assert observation["valueCodeableConcept"] == {
        "coding": [{"system": "http://snomed.info/sct", "code": "260385009", "display": "Negative"}]
    }


def test_a_structured_numeric_range_is_a_range() -> None:
    observation = observe(obx("SN", "^10^-^20", f6="mg/dL"))
    assert observation["valueRange"]["low"]["value"] == Decimal("10")
    assert observation["valueRange"]["high"]["value"] == Decimal("20")


def test_a_structured_numeric_ratio_is_a_ratio() -> None:
    observation = observe(obx("SN", "^1^:^128"))
    assert observation["valueRatio"] == {
        "numerator": {"value": Decimal("1")},
        "denominator": {"value": Decimal("128")},
    }


def test_a_structured_numeric_comparison_is_a_quantity_with_comparator() -> None:
    observation = observe(obx("SN", ">^5", f6="mg/L"))
    assert observation["valueQuantity"]["comparator"] == ">"
    assert observation["valueQuantity"]["value"] == Decimal("5")


def test_date_and_time_results_are_date_times() -> None:
    assert observe(obx("DT", "20240301"))["valueDateTime"] == "2024-03-01"
    assert observe(obx("DTM", "202403011230"))["valueDateTime"] == "2024-03-01T12:30:00+01:00"
    assert observe(obx("TM", "1230"))["valueTime"] == "12:30:00"


def test_a_numeric_array_is_sampled_data() -> None:
    sampled = observe(obx("NA", "1^2.5^3"))["valueSampledData"]
    assert sampled["data"] == "1 2.5 3"
    assert sampled["dimensions"] == 1


def test_the_result_status_maps_to_the_observation_status() -> None:
    assert observe(obx("NM", "1", status="P"))["status"] == "preliminary"
    assert observe(obx("NM", "1", status="C"))["status"] == "corrected"
    assert observe(obx("NM", "1", status="D"))["status"] == "entered-in-error"


def test_a_result_that_cannot_be_obtained_says_why() -> None:
    observation = observe(obx("NM", "", status="X"))
    assert observation["status"] == "cancelled"
    assert observation["dataAbsentReason"]["coding"][0]["code"] == "cannot-be-obtained"


def test_a_note_after_a_result_is_its_note() -> None:
    observation = observe(obx("NM", "1"), "NTE|1||nüchtern abgenommen")
    assert observation["note"] == [{"text": "nüchtern abgenommen"}]


def test_the_observation_time_falls_back_to_the_order() -> None:
    assert observe(obx("NM", "1"))["effectiveDateTime"] == "2024-03-11T08:00:00+01:00"
    own = observe(obx("NM", "1", f14="20240311091500"))
    assert own["effectiveDateTime"] == "2024-03-11T09:15:00+01:00"


def test_orc_and_obr_make_one_service_request_the_results_are_based_on() -> None:
    bundle = convert(message(HEADER, PID, ORC, OBR, obx("NM", "1"))).bundle
    order = one(bundle, "ServiceRequest")
    assert order["status"] == "completed"  # ORC-5 CM
    assert order["intent"] == "order"
    assert order["code"]["coding"][0]["code"] == "24331-1"
    assert {i["value"] for i in order["identifier"]} == {"P-100", "F-200"}
    assert one(bundle, "Observation")["basedOn"] == [{"reference": reference(order)}]


def test_the_report_lists_the_results_of_its_order() -> None:
    bundle = convert(
        message(HEADER, PID, ORC, OBR, obx("NM", "1"), obx("NM", "2", code="2085-9^HDL^LN"))
    ).bundle
    report = one(bundle, "DiagnosticReport")
    assert report["status"] == "final"
    assert report["issued"] == "2024-03-12T09:00:00+01:00"
    assert {r["reference"] for r in report["result"]} == {
        reference(o) for o in resources(bundle, "Observation")
    }


def test_each_order_reports_only_its_own_results() -> None:
    bundle = convert(sample("ORU/msfc__LAB-ORU-1.hl7")).bundle
    reports = resources(bundle, "DiagnosticReport")
    assert len(reports) == 2
    assert sorted(len(r["result"]) for r in reports) == [5, 5]


def test_a_final_result_updates_the_preliminary_observation(tmp_path: Path) -> None:
    """LAB-ORU-2 finalises LAB-ORU-1's results, in another OBX order: same Observations."""
    service = new_service(tmp_path)
    preliminary = convert(sample("ORU/msfc__LAB-ORU-1.hl7")).bundle
    final = convert(sample("ORU/msfc__LAB-ORU-2.hl7")).bundle

    def by_code(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {o["code"]["coding"][0]["code"]: o for o in resources(bundle, "Observation")}

    before, after = by_code(preliminary), by_code(final)
    assert {c: o["id"] for c, o in before.items()} == {c: o["id"] for c, o in after.items()}
    commit(service, preliminary)
    commit(service, final)
    version, basophils = stored(service, reference(after["30180-4"]))
    assert (version, basophils["status"]) == (2, "final")


def test_a_corrected_result_updates_the_same_observation() -> None:
    first = observe(obx("NM", "187", status="F"))
    corrected = observe(obx("NM", "178", status="C"))
    assert first["id"] == corrected["id"]
    assert corrected["status"] == "corrected"


def test_resending_a_result_gives_the_same_bundle() -> None:
    raw = sample("ORU/v2fhirig__ORU_R01.hl7")
    assert convert(raw).bundle == convert(raw).bundle


def test_two_results_with_the_same_code_stay_two_observations() -> None:
    bundle = convert(message(HEADER, PID, ORC, OBR, obx("NM", "1"), obx("NM", "2"))).bundle
    assert len({o["id"] for o in resources(bundle, "Observation")}) == 2


def test_a_result_without_a_code_is_skipped_with_a_warning() -> None:
    conversion = convert(sample("ORU/lfhconv__ORU-multiline-short.hl7"))
    assert resources(conversion.bundle, "Observation") == []
    assert any("Observation made" in w for w in conversion.warnings)


def test_results_belong_to_the_patient_and_the_visit() -> None:
    bundle = convert(sample("ORU/mirth__filereader_08_ORU_R01.hl7")).bundle
    patient, encounter = one(bundle, "Patient"), one(bundle, "Encounter")
    observations = resources(bundle, "Observation")
    assert len(observations) == 14
    assert all(o["subject"] == {"reference": reference(patient)} for o in observations)
    assert all(o["encounter"] == {"reference": reference(encounter)} for o in observations)

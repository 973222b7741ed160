"""REF^I12: the second-opinion referral as a ServiceRequest with what supports it."""

from __future__ import annotations

from adapters.hl7v2.convert import convert
from tests.adapters.hl7v2 import message, one, reference, resources, sample, segment

#: A practice refers a patient for a second opinion on a proposed spine operation.
REFERRAL = message(
    "MSH|^~\\&|PVS|PRAXIS-MUELLER|IVZ|ZWEITMEINUNG|20240312093000||REF^I12^REF_I12|R1|P|2.5",
    segment(
        "RF1",
        {
            1: "A^Accepted^HL70283",
            2: "R^Routine^HL70280",
            3: "Med^Medical^HL70281",
            5: "O^Outpatient^HL70284",
            6: "ZM-2024-0042^PRAXIS-MUELLER",
            7: "20240312",
            10: "S^Second Opinion^HL70336",
        },
    ),
    segment(
        "PRD",
        {1: "RP^Referring Provider^HL70286", 2: "Müller^Hans^^^Dr. med.", 7: "123456789^LANR"},
    ),
    segment(
        "PRD",
        {1: "RT^Referred to Provider^HL70286", 2: "Weber^Clara^^^Prof. Dr.", 7: "987654321^LANR"},
    ),
    segment(
        "PID",
        {
            1: "1",
            3: "X110411675^^^&1.2.276.0.76.4.8&ISO",
            5: "Mustermann^Max",
            7: "19640315",
            8: "M",
        },
    ),
    segment("DG1", {1: "1", 3: "M51.2^Sonstige Bandscheibenverlagerung^ICD10GM2024", 6: "F"}),
    segment("PR1", {1: "1", 3: "5-831.0^Exzision von Bandscheibengewebe^OPS2024", 5: "20240415"}),
    "NTE|1||Patient wünscht vor der Bandscheiben-OP eine Zweitmeinung.",
)


def test_rf1_becomes_the_referral_service_request() -> None:
    bundle = convert(REFERRAL).bundle
    referral = next(s for s in resources(bundle, "ServiceRequest") if s["intent"] == "order")
    assert referral["status"] == "active"
    assert referral["priority"] == "routine"
    assert referral["authoredOn"] == "2024-03-12"
    assert referral["category"][0]["coding"] == [
        {"system": "http://snomed.info/sct", "code": "3457005", "display": "Patient referral"}
    ]
    assert referral["identifier"][0]["value"] == "ZM-2024-0042"
    assert referral["subject"] == {"reference": reference(one(bundle, "Patient"))}


def test_a_second_opinion_is_the_reason_and_a_consultation_is_asked_for() -> None:
    referral = convert(REFERRAL).bundle["entry"][1]["resource"]
    assert referral["reasonCode"] == [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v2-0336",
                    "code": "S",
                    "display": "Second Opinion",
                }
            ]
        }
    ]
    assert referral["code"]["coding"][0]["code"] == "11429006"


def test_the_referring_and_referred_to_providers_are_requester_and_performer() -> None:
    bundle = convert(REFERRAL).bundle
    referral = next(s for s in resources(bundle, "ServiceRequest") if s["intent"] == "order")
    by_name = {p["name"][0]["family"]: p for p in resources(bundle, "Practitioner")}
    assert referral["requester"] == {"reference": reference(by_name["Müller"])}
    assert referral["performer"] == [{"reference": reference(by_name["Weber"])}]


def test_a_provider_numbered_by_lanr_gets_the_kbv_system() -> None:
    bundle = convert(REFERRAL).bundle
    muller = next(
        p for p in resources(bundle, "Practitioner") if p["name"][0]["family"] == "Müller"
    )
    assert muller["identifier"] == [
        {
            "value": "123456789",
            "system": "https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR",
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "code": "LANR",
                        "display": "Lifelong physician number",
                    }
                ]
            },
        }
    ]


def test_the_proposed_surgery_is_a_proposal_that_supports_the_referral() -> None:
    bundle = convert(REFERRAL).bundle
    proposal = next(s for s in resources(bundle, "ServiceRequest") if s["intent"] == "proposal")
    assert proposal["code"]["coding"] == [
        {
            "system": "http://fhir.de/CodeSystem/bfarm/ops",
            "version": "2024",
            "code": "5-831.0",
            "display": "Exzision von Bandscheibengewebe",
        }
    ]
    referral = next(s for s in resources(bundle, "ServiceRequest") if s["intent"] == "order")
    assert {"reference": reference(proposal)} in referral["supportingInfo"]


def test_the_diagnosis_is_an_icd_10_gm_condition_with_its_year() -> None:
    bundle = convert(REFERRAL).bundle
    condition = one(bundle, "Condition")
    assert condition["code"]["coding"][0] == {
        "system": "http://fhir.de/CodeSystem/bfarm/icd-10-gm",
        "version": "2024",
        "code": "M51.2",
        "display": "Sonstige Bandscheibenverlagerung",
    }
    assert condition["verificationStatus"]["coding"][0]["code"] == "confirmed"
    referral = next(s for s in resources(bundle, "ServiceRequest") if s["intent"] == "order")
    assert referral["reasonReference"] == [{"reference": reference(condition)}]


def test_notes_after_the_patient_are_notes_on_the_referral() -> None:
    referral = convert(REFERRAL).bundle["entry"][1]["resource"]
    assert referral["note"] == [
        {"text": "Patient wünscht vor der Bandscheiben-OP eine Zweitmeinung."}
    ]


def test_a_cancelled_referral_is_revoked() -> None:
    cancelled = REFERRAL.replace(b"REF^I12^REF_I12|R1", b"REF^I14^REF_I12|R2")
    bundle = convert(cancelled).bundle
    assert bundle["entry"][1]["resource"]["status"] == "revoked"
    assert (
        bundle["entry"][1]["resource"]["id"]
        == convert(REFERRAL).bundle["entry"][1]["resource"]["id"]
    )


def test_a_referral_from_the_corpus_keeps_its_notes_and_providers() -> None:
    conversion = convert(sample("REF/hapi__ref_i12_v25.hl7"))
    referral = one(conversion.bundle, "ServiceRequest")
    assert len(referral["note"]) == 6
    assert "requester" in referral and "performer" in referral


def test_an_empty_control_id_is_a_warning_and_the_provenance_id_comes_from_the_content() -> None:
    conversion = convert(sample("REF/hapi__ref_i12_v25.hl7"))
    assert any("no identifier for the Provenance" in w for w in conversion.warnings)
    assert (
        one(conversion.bundle, "Provenance")["id"]
        == (one(convert(sample("REF/hapi__ref_i12_v25.hl7")).bundle, "Provenance")["id"])
    )

"""The outbound ORU^R01's content: segments, fields, escaping, and that standard parsers (ours
and hl7apy, strictly validating v2.5.1) read it (docs/hl7v2-outbound.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from adapters.hl7v2 import oru
from adapters.hl7v2.outbound import facility, headers, parse_address
from adapters.hl7v2.parse import parse

WHEN = datetime(2026, 3, 5, 13, 30, tzinfo=UTC)
BASE = "https://ivz-bridge.example/fhir"
NASTY = "Stage II | a^b ~c \\d &e\nsecond line"


def verdict(status: str = "final", note: str = NASTY) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "v1",
        "meta": {"versionId": "1"},
        "status": status,
        "basedOn": [{"reference": "ServiceRequest/r1"}],
        "code": {"coding": [{"system": oru.OBSERVATION_SYSTEM, "code": "verdict"}]},
        "effectiveDateTime": "2026-03-05T13:30:00Z",
        "issued": "2026-03-05T13:30:00Z",
        "performer": [{"reference": "Organization/team-07", "display": "Team 7"}],
        "valueCodeableConcept": {
            "coding": [
                {
                    "system": oru.VERDICT_SYSTEM,
                    "code": "surgery-not-recommended",
                    "display": "Operation nicht empfohlen",
                }
            ]
        },
        "note": [{"text": note}],
    }


def facts(status: str = "final", **changes: Any) -> oru.VerdictFacts:
    base: dict[str, Any] = {
        "verdict": verdict(status),
        "referral": {
            "resourceType": "ServiceRequest",
            "id": "r1",
            "identifier": [{"system": "https://tk.example/referral", "value": "TK-4711"}],
        },
        "patient": {
            "resourceType": "Patient",
            "id": "p1",
            "identifier": [{"system": oru.KVNR_SYSTEM, "value": "X110411675"}],
            "name": [{"use": "official", "family": "Müller-Lüdenscheidt", "given": ["Jörg", "K"]}],
            "gender": "other",
            "_gender": {
                "extension": [
                    {
                        "url": oru.GENDER_DE,
                        "valueCoding": {
                            "system": "http://fhir.de/CodeSystem/gender-amtlich-de",
                            "code": "D",
                        },
                    }
                ]
            },
            "birthDate": "1961-02-03",
        },
        "appointment": {
            "resourceType": "Appointment",
            "identifier": [{"system": oru.APPOINTMENT_SYSTEM, "value": "00AB12CD34EF"}],
        },
        "care_plan": {
            "resourceType": "CarePlan",
            "title": "Treatment plan after the second opinion: Operation nicht empfohlen",
            "activity": [
                {
                    "detail": {
                        "code": {
                            "coding": [
                                {
                                    "system": "http://fhir.de/CodeSystem/bfarm/ops",
                                    "code": "8-918",
                                    "display": "Multimodal pain therapy | interdisciplinary",
                                }
                            ]
                        }
                    }
                }
            ],
        },
        "performer": {
            "resourceType": "Organization",
            "id": "team-07",
            "name": "Schmerzzentrum 7",
            "identifier": [{"system": oru.TEAM_SYSTEM, "value": "team-07"}],
        },
    }
    base.update(changes)
    return oru.VerdictFacts(**base)


def build(status: str = "F", **changes: Any) -> bytes:
    found = facts(**changes)
    return oru.build(found, oru.Receiver("KIS", "TEAM-07"), "IVZ0123456789ABCDEF0", WHEN, status)


def test_segments_in_order_and_header() -> None:
    message = parse(build())
    names = [s.name for s in message.segments]
    assert names == ["MSH", "PID", "ORC", "OBR", "OBX", "NTE", "NTE", "OBX", "OBX"]
    h = message.header
    assert (h.sending_application, h.sending_facility) == ("IVZ-BRIDGE", "IVZ")
    assert (h.receiving_application, h.receiving_facility) == ("KIS", "TEAM-07")
    assert (h.message_type, h.trigger_event, h.structure) == ("ORU", "R01", "ORU_R01")
    assert (h.control_id, h.version, h.processing_id) == ("IVZ0123456789ABCDEF0", "2.5.1", "P")
    assert h.accept_ack_type == h.application_ack_type == ""  # original mode: AA/AE/AR


def test_pid_carries_kvnr_with_its_authority_name_birth_date_and_sex() -> None:
    pid = parse(build()).first("PID")
    assert pid is not None
    kvnr, own = pid.field(3)
    assert kvnr[0] == ["X110411675"] and kvnr[3] == ["", "1.2.276.0.76.4.8", "ISO"]
    assert kvnr[4] == ["KVZ10"]
    assert own[0] == ["p1"] and own[4] == ["PI"]
    assert pid.value(5, 1) == "Müller-Lüdenscheidt" and pid.value(5, 2) == "Jörg"
    assert pid.value(5, 3) == "K"
    assert pid.value(7) == "19610203"
    assert pid.value(8) == "D"  # gender-amtlich-de wins over "other"


def test_order_numbers_verdict_obx_and_performer() -> None:
    message = parse(build())
    orc, obr, obx = message.first("ORC"), message.first("OBR"), message.first("OBX")
    assert orc is not None and obr is not None and obx is not None
    assert orc.value(1) == "RE" and orc.value(5) == "CM"
    for segment in (orc, obr):
        assert segment.value(2, 1) == "TK-4711"
        assert segment.value(2, 3) == "https://tk.example/referral"
        assert (segment.value(3, 1), segment.value(3, 2)) == ("00AB12CD34EF", "IVZ")
    assert [obr.value(4, n) for n in (1, 3)] == ["verdict", "IVZOBS"]
    assert obr.value(7) == "20260305143000+0100" and obr.value(25) == "F"
    assert obx.value(2) == "CWE"
    assert [obx.value(3, n) for n in (1, 3)] == ["verdict", "IVZOBS"]
    assert [obx.value(5, n) for n in (1, 2, 3)] == [
        "surgery-not-recommended",
        "Operation nicht empfohlen",
        "IVZVERDICT",
    ]
    assert obx.value(11) == "F" and obx.value(14) == "20260305143000+0100"
    assert obx.value(23, 1) == "Schmerzzentrum 7" and obx.value(23, 10) == "team-07"


def test_free_text_is_escaped_and_reads_back_exactly() -> None:
    raw = build()
    text = raw.decode()
    assert "NTE|1|L|Stage II \\F\\ a\\S\\b \\R\\c \\E\\d \\T\\e\r" in text
    message = parse(raw)
    assert [n.value(3) for n in message.all("NTE")] == ["Stage II | a^b ~c \\d &e", "second line"]
    lines = [o.value(5) for o in message.all("OBX")[1:]]
    assert lines == [
        "Treatment plan after the second opinion: Operation nicht empfohlen",
        "- Multimodal pain therapy | interdisciplinary (OPS 8-918)",
    ]
    assert all(o.value(3) == "18776-5" and o.value(2) == "TX" for o in message.all("OBX")[1:])


def test_hl7apy_validates_it_strictly_as_oru_r01_v251() -> None:
    parsed = parse_message(
        build().decode().replace("\n", ""),
        validation_level=VALIDATION_LEVEL.STRICT,
        find_groups=True,
    )
    parsed.validate()
    group = parsed.ORU_R01_PATIENT_RESULT.ORU_R01_ORDER_OBSERVATION
    assert group.ORU_R01_OBSERVATION[0].OBX.OBX_11.value == "F"


@pytest.mark.parametrize(("status", "expected"), [("amended", "C"), ("entered-in-error", "W")])
def test_result_status_follows_the_verdict(status: str, expected: str) -> None:
    assert oru.RESULT_STATUS[status] == expected
    message = parse(build(expected, verdict=verdict(status)))
    obx = message.first("OBX")
    assert obx is not None and obx.value(11) == expected
    plan_lines = len(message.all("OBX")) - 1
    assert plan_lines == (0 if expected == "W" else 2)  # a withdrawn verdict has no plan


def test_missing_data_leaves_fields_empty() -> None:
    raw = oru.build(
        oru.VerdictFacts(verdict={"status": "final"}, referral={"id": "r9"}),
        oru.Receiver("", ""),
        "C1",
        WHEN,
        "F",
    )
    assert raw == (
        b"MSH|^~\\&|IVZ-BRIDGE|IVZ|||20260305143000+0100||ORU^R01^ORU_R01|C1|P|2.5.1"
        b"|||||DEU|UNICODE UTF-8\rPID|1\rORC|RE|r9^IVZ|||CM"
        b"\rOBR|1|r9^IVZ||verdict^Second-opinion verdict^IVZOBS|||||||||||||||||||||F"
        b"\rOBX|1|CWE|verdict^Second-opinion verdict^IVZOBS|1|||||||F\r"
    )
    message = parse(raw)
    assert [s.name for s in message.segments] == ["MSH", "PID", "ORC", "OBR", "OBX"]
    orc = message.first("ORC")
    assert orc is not None and orc.value(2, 1) == "r9" and orc.value(3) == ""


def test_control_id_is_stable_and_fits_msh10() -> None:
    one = oru.control_id("Observation", "v1", 2, "ep-1")
    assert one == oru.control_id("Observation", "v1", 2, "ep-1")
    assert one != oru.control_id("Observation", "v1", 3, "ep-1")
    assert one != oru.control_id("Observation", "v1", 2, "ep-2")
    assert len(one) == 20 and one.isalnum()


def test_coding_system_names_agree_with_the_intake_mappings() -> None:
    path = Path(__file__).resolve().parents[3] / "mappings" / "codes" / "coding-systems.yaml"
    names = yaml.safe_load(path.read_text("utf-8"))["names"]
    for system, name in oru.CODING_SYSTEMS.items():
        assert names.get(name) == system, name  # our own intake reads it back


def test_endpoint_address_headers_and_facility() -> None:
    assert parse_address("mllp://clinic.example:2575") == ("clinic.example", 2575)
    for bad in ("http://x:1", "mllp://x", "mllp://:5", None, "mllp://x:port"):
        assert parse_address(bad) is None
    endpoint = {"header": ["MSH-5: ORBIS", "msh-6:KH-NORD", "Authorization: x"]}
    assert headers(endpoint) == {"MSH-5": "ORBIS", "MSH-6": "KH-NORD"}
    team = {"id": "team-03", "identifier": [{"system": oru.TEAM_SYSTEM, "value": "team-03"}]}
    assert facility(team) == "TEAM-03"
    ik = {"id": "o1", "identifier": [{"system": "http://fhir.de/sid/arge-ik/iknr", "value": "1"}]}
    assert facility(ik) == "1"
    assert facility({"id": "o2"}) == "o2"


def test_the_built_message_is_pinned_byte_for_byte() -> None:
    """Every resend must be byte-identical, so a refactor of the builder must not move a byte."""
    segments = [
        "MSH|^~\\&|IVZ-BRIDGE|IVZ|KIS|TEAM-07|20260305143000+0100||ORU^R01^ORU_R01"
        "|IVZ0123456789ABCDEF0|P|2.5.1|||||DEU|UNICODE UTF-8",
        "PID|1||X110411675^^^&1.2.276.0.76.4.8&ISO^KVZ10"
        "~p1^^^IVZ&https://ivz-bridge.example/fhir/Patient&URI^PI"
        "||Müller-Lüdenscheidt^Jörg^K^^^^L||19610203|D",
        "ORC|RE|TK-4711^^https://tk.example/referral^URI|00AB12CD34EF^IVZ||CM||||20260305143000+0100",
        "OBR|1|TK-4711^^https://tk.example/referral^URI|00AB12CD34EF^IVZ"
        "|verdict^Second-opinion verdict^IVZOBS|||20260305143000+0100"
        "|||||||||||||||20260305143000+0100|||C",
        "OBX|1|CWE|verdict^Second-opinion verdict^IVZOBS|1"
        "|surgery-not-recommended^Operation nicht empfohlen^IVZVERDICT||||||C|||20260305143000+0100"
        "|||||||||Schmerzzentrum 7^^^^^IVZ&https://ivz-bridge.example/fhir/sid/team&URI^XX^^^team-07",
        "NTE|1|L|Stage II \\F\\ a\\S\\b \\R\\c \\E\\d \\T\\e",
        "NTE|2|L|second line",
        "OBX|2|TX|18776-5^Plan of care note^LN|2"
        "|Treatment plan after the second opinion: Operation nicht empfohlen||||||C",
        "OBX|3|TX|18776-5^Plan of care note^LN|2"
        "|- Multimodal pain therapy \\F\\ interdisciplinary (OPS 8-918)||||||C",
    ]
    assert build("C", verdict=verdict("amended")) == ("\r".join(segments) + "\r").encode()
    withdrawn = build("W", verdict=verdict("entered-in-error")).decode().split("\r")
    assert withdrawn[:-1] == [
        s.replace("|||C", "|||W").replace("||C|", "||W|") for s in segments[:7]
    ]

"""ACKs: MSA-2, swapped applications, the sender's delimiters and version, ERR, enhanced mode."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import hl7
import pytest

from adapters.hl7v2.ack import (
    accept_ack_wanted,
    application_ack_wanted,
    build_ack,
    encode_ack,
    escape,
    is_original_mode,
    read_ack,
)
from adapters.hl7v2.types import (
    ERR_UNSUPPORTED_MESSAGE_TYPE,
    Delimiters,
    MessageHeader,
    V2Error,
)

WHEN = datetime(2026, 11, 25, 8, 30, 0, tzinfo=UTC)
HEADER = MessageHeader(
    sending_application="LAB^1.2.3^ISO",
    sending_facility="KLINIKUM",
    receiving_application="IVZ",
    receiving_facility="ZWEITMEINUNG",
    control_id="MSG00042",
    message_type="ORU",
    trigger_event="R01",
    structure="ORU_R01",
    processing_id="P",
    version="2.5.1",
    accept_ack_type="",
    application_ack_type="",
)


def segments(ack: str) -> dict[str, list[str]]:
    fs = ack[3]
    return {s[:3]: s.split(fs) for s in ack.split("\r") if s}


def test_original_mode_aa_swaps_sender_and_receiver_and_echoes_msh10() -> None:
    ack = build_ack(HEADER, "AA", when=WHEN, control_id="ACK1")
    assert ack == (
        "MSH|^~\\&|IVZ|ZWEITMEINUNG|LAB^1.2.3^ISO|KLINIKUM|20261125083000+0000||"
        "ACK^R01^ACK|ACK1|P|2.5.1\rMSA|AA|MSG00042\r"
    )
    parsed = hl7.parse(ack)
    assert str(parsed.segment("MSA")[2]) == "MSG00042"


def test_ae_carries_err_with_location_code_severity_and_escaped_text() -> None:
    error = V2Error(
        "PID-3 missing | see ^spec^ & retry\nnow",
        code="101",
        segment="PID",
        sequence=1,
        field_position=3,
    )
    err = segments(build_ack(HEADER, "AE", error))["ERR"]
    assert err[2] == "PID^1^3"
    assert err[3] == "101^Required field missing^HL70357"
    assert err[4] == "E"
    assert err[8] == "PID-3 missing \\F\\ see \\S\\spec\\S\\ \\T\\ retry now"
    assert read_ack(build_ack(HEADER, "AE", error).encode()).errors == [
        "PID-3 missing | see ^spec^ & retry now"
    ]


def test_ar_for_an_unsupported_type() -> None:
    error = V2Error("ADT^A99 is not supported", code=ERR_UNSUPPORTED_MESSAGE_TYPE, reject=True)
    reply = read_ack(build_ack(HEADER, "AR", error).encode())
    assert reply.code == "AR" and reply.acknowledged_id == "MSG00042" and not reply.ok
    assert reply.errors == ["ADT^A99 is not supported"]
    assert reply.error_codes == ["200"]


def test_the_senders_delimiters_are_kept() -> None:
    odd = Delimiters(field="^", component="~", repetition="|", escape="\\", subcomponent="&")
    header = replace(HEADER, delimiters=odd, sending_application="SENDER~X", version="2.4")
    ack = build_ack(header, "AE", V2Error("bad ^ field", segment="PID", sequence=1))
    assert ack.startswith("MSH^~|\\&^IVZ^ZWEITMEINUNG^SENDER~X^KLINIKUM^")
    fields = segments(ack)
    assert fields["MSH"][8] == "ACK~R01~ACK"
    assert fields["MSA"][1:3] == ["AE", "MSG00042"]
    assert fields["ERR"][8] == "bad \\F\\ field"


def test_the_senders_version_decides_msh9_and_legacy_err1() -> None:
    old = replace(HEADER, version="2.3")
    fields = segments(build_ack(old, "AE", V2Error("x", code="102", segment="OBX", sequence=2)))
    assert fields["MSH"][11] == "2.3"
    assert fields["MSH"][8] == "ACK^R01"
    assert fields["ERR"][1] == "OBX^2^^102&Data type error&HL70357"
    legacy = build_ack(old, "AE", V2Error("x", code="102")).replace(
        "|102^Data type error^HL70357", "|"
    )
    assert read_ack(legacy.encode()).error_codes == ["102"]
    assert fields["MSA"][3] == "x"
    assert segments(build_ack(replace(HEADER, version="2.2"), "AA"))["MSH"][8] == "ACK"


def test_unreadable_header_gets_an_ar_with_defaults() -> None:
    ack = build_ack(None, "AR", V2Error("no MSH segment", reject=True))
    fields = segments(ack)
    assert fields["MSH"][2] == "IVZ-BRIDGE" and fields["MSA"][1:3] == ["AR", ""]


def test_enhanced_mode_rules_of_table_0155() -> None:
    enhanced = replace(HEADER, accept_ack_type="AL", application_ack_type="ER")
    assert not is_original_mode(enhanced) and is_original_mode(HEADER)
    assert accept_ack_wanted(enhanced, "CA")
    assert not application_ack_wanted(enhanced, "AA")
    assert application_ack_wanted(enhanced, "AE")
    su = replace(HEADER, accept_ack_type="NE", application_ack_type="SU")
    assert not accept_ack_wanted(su, "CA") and application_ack_wanted(su, "AA")
    assert not application_ack_wanted(su, "AR")
    fields = segments(build_ack(enhanced, "CA"))
    assert fields["MSH"][14:16] == ["NE", "NE"]  # MSH-15/16: an ACK never asks for an ACK


def test_escape_covers_all_delimiters_and_the_escape_itself() -> None:
    assert escape("a\\b|c^d&e~f\rg", Delimiters()) == "a\\E\\b\\F\\c\\S\\d\\T\\e\\R\\f g"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"MSH|^~\\&|K\xc3\xb6ln|", "utf-8"), (b"MSH|^~\\&|K\xf6ln|", "latin-1")],
)
def test_ack_bytes_follow_the_senders_encoding(raw: bytes, expected: str) -> None:
    header = replace(HEADER, sending_facility="Köln")
    assert "Köln".encode(expected) in encode_ack(build_ack(header, "AA"), raw)


def test_read_ack_rejects_what_is_not_an_ack() -> None:
    with pytest.raises(ValueError):
        read_ack(b"hello")
    with pytest.raises(ValueError):
        read_ack(b"MSH|^~\\&|A|B|C|D|||ADT^A01|1|P|2.5\rPID|1\r")

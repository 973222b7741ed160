"""Reading v2 bytes: separators, BOM, delimiters, escapes, Z-segments, batches, bad headers."""

from __future__ import annotations

import hl7
import pytest

from adapters.hl7v2.parse import normalise, parse, read_header, split_messages, unescape
from adapters.hl7v2.types import Delimiters, V2Error
from tests.adapters.hl7v2 import SAMPLES, message, sample

ADT = (
    "MSH|^~\\&|HIS|KLINIKUM^1.2.276.0.76.3.1.1^ISO|IVZ|ZM|20240312093000||ADT^A04|C1|P|2.5",
    "PID|1||4711^^^KLINIKUM^MR||Mustermann^Max||19640315|M",
)


def test_cr_lf_and_crlf_separators_give_the_same_segments() -> None:
    text = "\r".join(ADT)
    variants = [text.replace("\r", sep).encode() for sep in ("\r", "\n", "\r\n")]
    parsed = [parse(v) for v in variants]
    assert {tuple(s.name for s in m.segments) for m in parsed} == {("MSH", "PID")}
    assert {m.segments[1].value(5, 2) for m in parsed} == {"Max"}


def test_a_utf8_bom_is_ignored() -> None:
    parsed = parse(b"\xef\xbb\xbf" + message(*ADT))
    assert parsed.segments[0].name == "MSH"
    assert read_header(b"\xef\xbb\xbf" + message(*ADT)).message_type == "ADT"


def test_blank_lines_and_mllp_framing_are_tolerated() -> None:
    raw = b"\x0b\r\n" + message(*ADT).replace(b"\r", b"\r\n\r\n") + b"\x1c\r"
    assert [s.name for s in parse(raw).segments] == ["MSH", "PID"]


def test_normalise_ends_every_segment_with_cr() -> None:
    assert normalise("\n".join(ADT).encode()) == message(*ADT)


def test_delimiters_come_from_msh_1_and_msh_2() -> None:
    raw = sample("other/hapi__segmentfinder_a24_nonstandard_delims.hl7")
    parsed = parse(raw)
    assert parsed.encoding.delimiters == Delimiters("^", "~", "|", "\\", "&")
    pid = parsed.segments[2]
    assert pid.value(3) == "11111"
    assert (pid.value(3, 4), pid.value(3, 4, 3), pid.value(3, 5)) == ("FOO", "0363", "NI")
    assert pid.value(5, 2) == "JOHN"


def test_an_underscore_can_be_the_field_separator() -> None:
    header = read_header(sample("other/medplum__ack_nonstandard_field_sep.hl7"))
    assert header.delimiters.field == "_"
    assert header.message_type == "ACK"


def test_the_v27_truncation_character_is_not_a_delimiter() -> None:
    parsed = parse(sample("other/hl7apy__rsp_k21_v27_truncation.hl7"))
    assert parsed.encoding.delimiters == Delimiters()
    assert parsed.encoding.truncation == "#"


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("a\\F\\b", "a|b"),
        ("a\\S\\b", "a^b"),
        ("a\\T\\b", "a&b"),
        ("a\\R\\b", "a~b"),
        ("a\\E\\b", "a\\b"),
        ("caf\\XC3A9\\", "café"),
        ("line 1\\.br\\line 2", "line 1\nline 2"),
        ("\\H\\bold\\N\\", "bold"),
    ],
)
def test_escape_sequences_are_replaced(escaped: str, plain: str) -> None:
    assert unescape(escaped) == plain


def test_escaped_delimiters_do_not_split_a_field() -> None:
    obx = "OBX|1|ST|x^y||A\\T\\E \\S\\ 3\\F\\4||||||F"
    parsed = parse(message(ADT[0], obx))
    assert parsed.segments[1].field(5) == [[["A&E ^ 3|4"]]]


def test_formatted_text_line_breaks_become_newlines() -> None:
    parsed = parse(sample("other/v2fhirig__Message.hl7_MDM_T02.hl7"))
    ft = next(s for s in parsed.segments if s.name == "OBX" and s.value(2) == "FT")
    text = ft.value(5)
    assert "\n" in text and "\\.br\\" not in text
    assert text.startswith("Critical Values Entered On:  08/22/2023 2:11 EDT \n")


def test_an_unknown_escape_is_kept_as_text_with_a_warning() -> None:
    parsed = parse(message(ADT[0], "NTE|1||see \\Zabc\\ here"))
    assert parsed.segments[1].value(3) == "see \\Zabc\\ here"
    assert any("unknown escape" in w for w in parsed.warnings)


def test_z_segments_are_kept_in_order() -> None:
    parsed = parse(sample("other/gcphdh__rde_o01_ex1.hl7"))
    names = [s.name for s in parsed.segments]
    assert names.index("ZVI") == names.index("PV2") + 1
    assert "ZAL" in names


def test_repetitions_components_and_subcomponents_are_kept() -> None:
    parsed = parse(sample("other/pyhl7__rep_sample_hl7.hl7"))
    pid = parsed.first("PID")
    assert pid is not None
    assert pid.field(3) == [[["Component1"], ["Sub-Component1", "Sub-Component2"], ["Component3"]]]
    assert pid.field(4) == [[["Repeat1"]], [["Repeat2"]]]


def test_the_explicit_null_reads_as_empty() -> None:
    parsed = parse(message(ADT[0], 'PID|1||""^^^X||""'))
    assert parsed.segments[1].field(5) == []
    assert parsed.segments[1].value(3) == ""


def test_fields_split_as_python_hl7_splits_them() -> None:
    """Cross-check on the whole corpus: the same fields, components and raw text."""
    checked = 0
    for path in sorted(SAMPLES.glob("[A-Z]*/*.hl7")):
        for raw in split_messages(path.read_bytes()):
            try:
                ours = parse(raw)
            except V2Error:
                continue
            theirs = hl7.parse(raw.decode("utf-8", "replace").rstrip("\r"))
            for mine, other in zip(ours.segments, theirs, strict=True):
                size = max(len(mine.raw_fields), len(other))
                for n in range(2 if mine.name == "MSH" else 1, size):
                    assert mine.raw(n) == (str(other[n]) if n < len(other) else ""), (path, n)
            checked += 1
    assert checked > 90


def test_a_latin1_message_is_read_with_its_msh_18_charset() -> None:
    raw = message(
        "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5||||||8859/1",
        "PID|1||1^^^B||Müller^Jürgen",
    ).decode()
    parsed = parse(raw.encode("latin-1"))
    assert parsed.segments[1].value(5) == "Müller"
    assert parsed.warnings == []


def test_a_line_that_is_no_segment_is_a_warning() -> None:
    parsed = parse(message(*ADT, "this is not a segment"))
    assert [s.name for s in parsed.segments] == ["MSH", "PID"]
    assert any("not a segment" in w for w in parsed.warnings)


def test_a_second_msh_is_rejected() -> None:
    with pytest.raises(V2Error) as caught:
        parse(message(*ADT, *ADT))
    assert caught.value.reject and "split_messages" in caught.value.message


# --- the header -------------------------------------------------------------------------------


def test_read_header_gives_what_intake_needs() -> None:
    header = read_header(message(*ADT))
    assert header.sending_application == "HIS"
    assert header.sending_facility == "KLINIKUM^1.2.276.0.76.3.1.1^ISO"
    assert (header.control_id, header.message_type, header.trigger_event) == ("C1", "ADT", "A04")
    assert (header.processing_id, header.version) == ("P", "2.5")


def test_read_header_derives_the_structure_from_the_event() -> None:
    assert read_header(message(*ADT)).structure == "ADT_A01"


def test_read_header_keeps_msh_9_3_as_sent() -> None:
    header = read_header(sample("ADT/gcphdh__adt_a01.hl7"))
    assert header.structure == "9.3-DEF"


def test_read_header_reads_only_the_first_segment() -> None:
    header = read_header(message(ADT[0]) + b"garbage that is never parsed \xff\xfe")
    assert header.control_id == "C1"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"PID|1||x", "not MSH"),
        (b"BHS|^~\\&|A\rMSH|^~\\&|A", "batch header"),
        (b"MSH|^~", "too short"),
        (b"MSH|^~\\\\&|A|B|C|D|20240101||ADT^A01|1|P|2.6", "repeats a delimiter"),
        (b"MSH|^&&^|A|B|C|D|20240101||ADT^A01|1|P|2.6", "repeats a delimiter"),
        (b"MSH|0|||||||00|||2.7", "must hold 4"),
        (b"MSHA^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.6", "cannot be a field separator"),
        (b"MSH|^~\\&|A|B|C|D|20240101|||1|P|2.6", "MSH-9"),
    ],
)
def test_read_header_rejects_an_unreadable_header(raw: bytes, reason: str) -> None:
    with pytest.raises(V2Error) as caught:
        read_header(raw)
    assert caught.value.reject
    assert reason in caught.value.message
    assert caught.value.segment == "MSH"


# --- files and batches --------------------------------------------------------------------------


def test_a_file_of_messages_is_split_into_messages() -> None:
    messages = split_messages(sample("other/mirth__batch01_multi_SIU.hl7"))
    assert [read_header(m).trigger_event for m in messages] == ["S12", "S14", "S15"]


def test_batch_headers_and_trailers_are_dropped() -> None:
    messages = split_messages(sample("other/pyhl7__sample_file1.hl7"))
    assert len(messages) == 3
    for raw in messages:
        assert raw.startswith(b"MSH|")
        assert not any(line[:3] in (b"FHS", b"BHS", b"BTS", b"FTS") for line in raw.split(b"\r"))


def test_a_single_batch_gives_its_one_message() -> None:
    [only] = split_messages(sample("other/pyhl7__sample_batch.hl7"))
    assert read_header(only).structure == "ADT_A01"


def test_a_segment_outside_any_message_makes_the_file_unreadable() -> None:
    with pytest.raises(V2Error) as caught:
        split_messages(sample("malformed/pyhl7__sample_bad_batch.hl7"))
    assert caught.value.reject and "outside a message" in caught.value.message


def test_a_batch_header_inside_an_open_batch_makes_the_file_unreadable() -> None:
    with pytest.raises(V2Error) as caught:
        split_messages(sample("malformed/pyhl7__sample_bad_file1.hl7"))
    assert "BHS" in caught.value.message


def test_split_messages_of_nothing_is_no_message() -> None:
    assert split_messages(b"\r\n\n") == []

"""Encodings, delimiters, JSON and JSON Lines; malformed records do not stop the file."""

from __future__ import annotations

import codecs

import pytest

from adapters.insurer import layout
from adapters.insurer.reader import SourceError, read
from tests.adapters.insurer.helpers import sample

TK = layout.load("tk")
AOK = layout.load("aok")


def _names(data: bytes, spec: layout.Layout = TK) -> list[str]:
    column = "Nachname" if spec is TK else "last_name"
    return [r.values[column] for r in read(data, spec).records]


EXPECTED = ["Müller", "Schneider", "Öztürk", "Weiß"]


def test_utf8_without_bom_semicolon() -> None:
    source = read(sample("tk.csv"), TK)
    assert (source.encoding, source.delimiter, source.format) == ("utf-8", ";", "csv")
    assert _names(sample("tk.csv")) == EXPECTED


def test_utf8_with_bom_is_read_without_the_bom_in_the_first_header() -> None:
    data = codecs.BOM_UTF8 + sample("tk.csv")
    source = read(data, TK)
    assert source.encoding == "utf-8-sig"
    assert source.records[0].values["Fallnummer"] == "TK-2024-0001"


def test_windows_1252_comma_file_is_detected() -> None:
    source = read(sample("tk_windows1252.csv"), TK)
    assert (source.encoding, source.delimiter) == ("cp1252", ",")
    assert _names(sample("tk_windows1252.csv")) == EXPECTED
    assert source.records[3].values["Bemerkung"] == "Befund „MRT 02/2024“ liegt bei"


def test_iso_8859_15_is_used_when_the_layout_prefers_it() -> None:
    source = read(sample("aok.csv"), AOK)
    assert (source.encoding, source.delimiter) == ("iso-8859-15", ",")
    assert _names(sample("aok.csv"), AOK) == ["Šubert", "Lehmann"]


def test_iso_8859_15_tk_file_without_c1_bytes_falls_back_in_layout_order() -> None:
    data = sample("tk.csv").decode("utf-8").replace("„", '"').replace("“", '"')
    source = read(data.encode("iso-8859-15"), TK)
    assert source.encoding == "cp1252"  # tk lists cp1252 first; both agree on umlauts
    assert [r.values["Nachname"] for r in source.records] == EXPECTED


def test_explicit_encoding_overrides_detection() -> None:
    source = read(sample("aok.csv"), AOK, encoding="cp1252")
    assert source.records[0].values["last_name"] == "¦ubert"


def test_utf16_with_bom_is_read() -> None:
    data = sample("tk.csv").decode("utf-8").encode("utf-16")
    assert _names(data) == EXPECTED


def test_delimiter_is_sniffed_from_the_header_not_from_data() -> None:
    source = read(sample("tk_windows1252.csv"), TK)
    assert source.records[0].values["Diagnosen_ICD10GM"] == "M51.2;M54.5"


def test_json_array_with_lists_and_numbers() -> None:
    source = read(sample("tk.json"), TK)
    assert source.format == "json"
    first = source.records[0].values
    assert first["Diagnosen_ICD10GM"] == "M51.2;M54.5"
    assert first["IK_Kasse"] == "101575519"
    assert [r.values["Nachname"] for r in source.records] == EXPECTED


def test_json_lines_keep_their_line_numbers() -> None:
    source = read(sample("tk.jsonl"), TK)
    assert source.format == "jsonl"
    assert [(r.row, r.line) for r in source.records] == [(1, 1), (2, 2), (3, 3), (4, 4)]


def test_invalid_json_line_becomes_a_record_problem_and_the_rest_is_read() -> None:
    lines = sample("tk.jsonl").split(b"\n")
    lines.insert(1, b'{"Fallnummer": "TK-X", broken')
    source = read(b"\n".join(lines), TK)
    assert len(source.records) == 5
    assert source.records[1].problem is not None
    assert source.records[1].problem.startswith("line 2 is not valid JSON")
    assert source.records[2].values["Nachname"] == "Schneider"


def test_nested_json_value_is_flagged_per_field() -> None:
    source = read(b'[{"Fallnummer": "TK-1", "Nachname": {"x": 1}}]', TK)
    assert source.records[0].bad_values == {"Nachname": "expected text, found a JSON dict"}


def test_csv_record_with_wrong_field_count_is_a_problem_with_its_line() -> None:
    source = read(sample("tk_errors.csv"), TK)
    short = source.records[7]
    assert (short.row, short.line) == (8, 9)
    assert short.problem == "7 fields where the header has 23 (line 9)"


def test_header_without_required_columns_refuses_the_file() -> None:
    with pytest.raises(SourceError, match=r"lacks the columns \['KVNR'\]"):
        read(sample("tk.csv").replace(b";KVNR;", b";Versichertennummer;"), TK)


def test_aok_file_read_as_tk_is_refused() -> None:
    with pytest.raises(SourceError, match="the header lacks the columns"):
        read(sample("aok.csv"), TK)


def test_undecodable_file_is_refused() -> None:
    spec = TK.model_copy(update={"source": TK.source.model_copy(update={"encodings": ["utf-8"]})})
    with pytest.raises(SourceError, match="not UTF-8"):
        read(sample("tk_windows1252.csv"), spec)


def test_unknown_columns_are_reported_as_warnings() -> None:
    data = sample("tk.csv").replace(b";Bemerkung", b";Bemerkung;Extra", 1)
    data = data.replace(b"\r\n", b";x\r\n").replace(b";Extra;x\r\n", b";Extra\r\n", 1)
    source = read(data, TK)
    assert any("ignored: ['Extra']" in w for w in source.warnings)

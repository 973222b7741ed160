"""Strict JSON parsing of request bodies: what FHIR JSON allows and what it must refuse."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError


def test_decimals_keep_their_written_precision_through_a_round_trip() -> None:
    body = b'{"a":1.50,"b":0.10,"c":-0.0,"d":120}'
    value = jsonio.loads(body)
    assert value["a"] == Decimal("1.50") and str(value["a"]) == "1.50"
    assert type(value["d"]) is int
    assert jsonio.dumps(value) == body


def test_a_duplicate_key_is_refused_with_its_name_and_place() -> None:
    with pytest.raises(FhirError) as caught:
        jsonio.loads(b'{"resourceType":"Patient","gender":"male","gender":"female"}')
    assert caught.value.status == 400
    assert '"gender"' in str(caught.value) and "column" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [b'{"a":NaN}', b'{"a":Infinity}', b'{"a":1,}', b"[1", b'{"a":"\\ud800"}', b"\xff", b"{} x"],
)
def test_what_is_not_json_is_a_400(body: bytes) -> None:
    with pytest.raises(FhirError) as caught:
        jsonio.loads(body)
    assert caught.value.status == 400 and "not valid JSON" in str(caught.value)


@pytest.mark.parametrize("depth", [jsonio.MAX_DEPTH + 1, 300, 100_000])
def test_documents_nested_too_deep_are_too_costly(depth: int) -> None:
    with pytest.raises(FhirError) as caught:
        jsonio.loads(b"[" * depth + b"]" * depth)
    assert caught.value.status == 400 and "deeper than" in str(caught.value)


def test_stored_bytes_parse_back_with_decimals() -> None:
    assert jsonio.loads_trusted(b'{"v":2.50}') == {"v": Decimal("2.50")}


def test_integers_beyond_64_bits_are_kept_as_written() -> None:
    body = b'{"valueQuantity":{"value":12345678901234567890123},"n":-9223372036854775808}'
    value = jsonio.loads(body)
    assert jsonio.dumps(value) == body
    assert jsonio.dumps(jsonio.loads_trusted(body)) == body


@pytest.mark.parametrize("number", [b"1e99999999", b"-1E-5000", b"[1e1001]"])
def test_a_decimal_with_a_huge_exponent_is_refused_not_expanded(number: bytes) -> None:
    body = number if number.startswith(b"[") else b'{"value":' + number + b"}"
    with pytest.raises(FhirError) as caught:
        jsonio.loads(body)
    assert caught.value.status == 400 and "outside" in str(caught.value)


def test_a_decimal_with_a_large_but_real_exponent_is_kept() -> None:
    assert jsonio.dumps(jsonio.loads(b'{"v":1.5e300}')) == b'{"v":' + b"15" + b"0" * 299 + b"}"

"""Check digits and code formats, with published example numbers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from adapters.insurer import validators as check
from tests.adapters.insurer.helpers import new_kvnr


def test_kvnr_published_example_a123456780_is_valid() -> None:
    assert check.kvnr("A123456780") == "A123456780"


def test_kvnr_check_digit_follows_letter_as_two_digits_and_weights_1_2() -> None:
    # A=01 then 12345678: products 0,2,1,4,3,8,5,12->3,7,16->7 sum 40 -> 0
    assert check.kvnr_check_digit("A12345678") == 0
    assert check.kvnr_check_digit("Z00000000") == 5  # Z=26: 2*1 + (6*2=12 -> 1+2) = 5
    for _ in range(50):
        assert check.kvnr(new_kvnr())


def test_kvnr_with_wrong_check_digit_is_rejected_with_the_expected_digit() -> None:
    with pytest.raises(check.Invalid, match="check digit is 9, expected 0"):
        check.kvnr("A123456789")  # the ISiK example number is not a valid KVNR


@pytest.mark.parametrize("value", ["123456789", "a12345678", "AA23456789", "A12345678", ""])
def test_kvnr_of_wrong_shape_is_rejected(value: str) -> None:
    with pytest.raises(check.Invalid, match="capital letter followed by 9 digits"):
        check.kvnr(value)


@pytest.mark.parametrize(
    "ik", ["101575519", "260326822", "260120196"]
)  # TK; the ISiK Coverage and Organization examples
def test_documented_iks_pass_the_check_digit(ik: str) -> None:
    assert check.ik(ik) == ik


def test_ik_check_digit_weights_digits_3_to_8_with_2_1_2_1_2_1() -> None:
    # 101575519: 1*2, 5*1, 7*2=14->5, 5*1, 5*2=10->1, 1*1 -> 19 -> 9
    assert check.ik_check_digit("10157551") == 9


def test_ik_with_wrong_check_digit_is_rejected() -> None:
    with pytest.raises(check.Invalid, match="check digit is 8, expected 9"):
        check.ik("101575518")


@pytest.mark.parametrize("value", ["10157551", "1015755190", "10157551X"])
def test_ik_of_wrong_length_is_rejected(value: str) -> None:
    with pytest.raises(check.Invalid, match="exactly 9 digits"):
        check.ik(value)


@pytest.mark.parametrize("code", ["M51.2", "M54.5", "M48.06", "F45.41", "m51.2", "M54"])
def test_icd10gm_codes_are_accepted_and_upper_cased(code: str) -> None:
    assert check.icd10gm(code) == code.upper()


@pytest.mark.parametrize("code", ["M5.12", "M51.234", "51.2", "M51-2", "M51."])
def test_malformed_icd10gm_codes_are_rejected(code: str) -> None:
    with pytest.raises(check.Invalid, match="not an ICD-10-GM code"):
        check.icd10gm(code)


@pytest.mark.parametrize("code", ["5-836.30", "5-83b.50", "8-91c.1", "5-831.0", "5-032", "1-910"])
def test_ops_codes_are_accepted(code: str) -> None:
    assert check.ops(code) == code


@pytest.mark.parametrize("code", ["5836.30", "5-83.30", "5-836.300", "X-836.30", "5-836,30"])
def test_malformed_ops_codes_are_rejected(code: str) -> None:
    with pytest.raises(check.Invalid, match="not an OPS code"):
        check.ops(code)


def test_dates_in_iso_and_german_form_are_read() -> None:
    formats = ["%Y-%m-%d", "%d.%m.%Y"]
    assert check.parse_date("1964-08-12", formats) == date(1964, 8, 12)
    assert check.parse_date("12.08.1964", formats) == date(1964, 8, 12)


def test_impossible_dates_are_rejected() -> None:
    with pytest.raises(check.Invalid, match="not a date"):
        check.parse_date("31.02.1970", ["%Y-%m-%d", "%d.%m.%Y"])


def test_naive_date_times_are_local_to_the_layout_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    moment = check.parse_datetime("2024-03-04 10:30", ["%Y-%m-%d %H:%M"], ["%Y-%m-%d"], berlin)
    assert moment == datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
    midnight = check.parse_datetime("05.03.2024", [], ["%d.%m.%Y"], berlin)
    assert midnight.isoformat() == "2024-03-05T00:00:00+01:00"


def test_lanr_has_nine_digits() -> None:
    with pytest.raises(check.Invalid, match="exactly 9 digits"):
        check.lanr("12345")


@pytest.mark.parametrize("value", ["123456601", "999999900", "555555510", "345678801"])
def test_lanr_with_a_correct_check_digit_is_accepted(value: str) -> None:
    assert check.lanr(value) == value


def test_lanr_check_digit_is_the_seventh_digit() -> None:
    with pytest.raises(check.Invalid, match=r"check digit \(7th digit\) is 0, expected 8"):
        check.lanr("345678001")

"""Checks for the German identifiers and codes an insurer export carries.

Each check takes the raw text and returns the normalised value or raises :class:`Invalid` with
a reason a clerk at the insurer can act on. They know nothing of layouts or FHIR.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, tzinfo

_KVNR = re.compile(r"^[A-Z][0-9]{9}$")
_IK = re.compile(r"^[0-9]{9}$")
_LANR = re.compile(r"^[0-9]{9}$")
#: ICD-10-GM terminal or 3-character code: letter, two digits, optional '.' and 1-2 digits.
_ICD10GM = re.compile(r"^[A-Z][0-9]{2}(\.[0-9]{1,2})?$")
#: OPS: chapter digit, '-', two digits and a digit or letter, optional '.' and 1-2 characters.
_OPS = re.compile(r"^[1-9]-[0-9]{2}[0-9a-z](\.[0-9a-z]{1,2})?$")
_POSTAL_CODE = re.compile(r"^[0-9]{5}$")
_PHONE = re.compile(r"^\+?[0-9 ()/\-.]{5,30}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Invalid(ValueError):
    """A value that fails a check; the message is the reason shown in the error report."""


def _cross_sum(n: int) -> int:
    return n // 10 + n % 10


def kvnr_check_digit(first_nine: str) -> int:
    """Check digit of a KVNR from its letter and first eight digits (§290 SGB V scheme).

    The letter becomes its two-digit position (A=01 … Z=26); with the eight digits that makes
    ten digits, weighted 1, 2, 1, 2, …; the cross sums of the products are added up, mod 10.
    """
    digits = f"{ord(first_nine[0]) - ord('A') + 1:02d}{first_nine[1:9]}"
    return sum(_cross_sum(int(d) * (1 if i % 2 == 0 else 2)) for i, d in enumerate(digits)) % 10


def kvnr(value: str) -> str:
    text = value.strip().upper()
    if not _KVNR.match(text):
        raise Invalid("KVNR must be a capital letter followed by 9 digits")
    expected = kvnr_check_digit(text)
    if int(text[9]) != expected:
        raise Invalid(f"KVNR check digit is {text[9]}, expected {expected}")
    return text


def ik_check_digit(first_eight: str) -> int:
    """Check digit of an Institutionskennzeichen: digits 3-8 weighted 2, 1, 2, 1, 2, 1,
    cross sums of the products added up, mod 10 (digits 1-2 are the class and not weighted)."""
    serial = first_eight[2:8]
    return sum(_cross_sum(int(d) * (2 if i % 2 == 0 else 1)) for i, d in enumerate(serial)) % 10


def ik(value: str) -> str:
    text = value.strip()
    if not _IK.match(text):
        raise Invalid("IK must be exactly 9 digits")
    expected = ik_check_digit(text)
    if int(text[8]) != expected:
        raise Invalid(f"IK check digit is {text[8]}, expected {expected}")
    return text


def lanr_check_digit(first_six: str) -> int:
    """The 7th digit of a LANR (lebenslange Arztnummer, KBV): digits 1-6 weighted 4, 9, 4, 9,
    4, 9; the check digit tops the sum up to the next multiple of ten (0 when it is one).
    Pseudo-LANRs such as 999999900 follow the same rule."""
    total = sum(int(d) * (4 if i % 2 == 0 else 9) for i, d in enumerate(first_six[:6]))
    return (10 - total % 10) % 10


def lanr(value: str) -> str:
    """Nine digits: six for the physician, the check digit, two for the specialty group."""
    text = value.strip()
    if not _LANR.match(text):
        raise Invalid("LANR must be exactly 9 digits")
    expected = lanr_check_digit(text)
    if int(text[6]) != expected:
        raise Invalid(f"LANR check digit (7th digit) is {text[6]}, expected {expected}")
    return text


def icd10gm(value: str) -> str:
    text = value.strip().upper()
    if not _ICD10GM.match(text):
        raise Invalid(f"'{value.strip()}' is not an ICD-10-GM code (e.g. M51.2)")
    return text


def ops(value: str) -> str:
    text = value.strip().lower()
    if not _OPS.match(text):
        raise Invalid(f"'{value.strip()}' is not an OPS code (e.g. 5-836.30)")
    return text


def parse_date(value: str, formats: list[str]) -> date:
    text = value.strip()
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise Invalid(f"not a date in a known format ({', '.join(formats)})")


def parse_datetime(
    value: str, formats: list[str], date_formats: list[str], zone: tzinfo
) -> datetime:
    """A moment with a zone: naive times are local to ``zone``, a bare date is its midnight."""
    text = value.strip()
    for fmt in formats:
        try:
            moment = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
    try:
        day = parse_date(text, date_formats)
    except Invalid:
        raise Invalid("not a date-time in a known format") from None
    return datetime.combine(day, time(0, 0), zone)


def postal_code(value: str) -> str:
    text = value.strip()
    if not _POSTAL_CODE.match(text):
        raise Invalid("postal code must be 5 digits")
    return text


def phone(value: str) -> str:
    text = " ".join(value.split())
    if not _PHONE.match(text) or sum(c.isdigit() for c in text) < 5:
        raise Invalid("not a phone number")
    return text


def email(value: str) -> str:
    text = value.strip()
    if not _EMAIL.match(text):
        raise Invalid("not an e-mail address")
    return text

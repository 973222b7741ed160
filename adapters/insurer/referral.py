"""A record checked field by field into a :class:`Referral`, the program's view of a row.

Which check applies follows from the target a column feeds, never from the layout's name; all
problems of a row are collected, so the insurer sees them together.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from adapters.insurer import validators as check
from adapters.insurer.layout import CANONICAL_CODES, REQUIRED, Layout, LayoutError, Target
from adapters.insurer.reader import Record
from adapters.insurer.report import RowIssue

_LIST_SPLIT = re.compile(r"[;,|\s]+")
_EARLIEST_BIRTH = date(1900, 1, 1)


@dataclass(frozen=True, slots=True)
class Referral:
    """One valid referral; optional parts are None when the row left them empty."""

    row: int
    line: int | None
    referral_id: str
    received_at: datetime
    kvnr: str
    insurer_ik: str
    insurer_name: str
    family: str
    given: tuple[str, ...]
    birth_date: date
    sex: str
    postal_code: str | None
    city: str | None
    phone: str | None
    email: str | None
    diagnoses: tuple[str, ...]
    ops_code: str
    ops_text: str | None
    surgeon_lanr: str | None
    surgeon_name: str | None
    hospital_ik: str | None
    hospital_name: str | None
    planned_date: date | None
    #: ``permit``, ``deny`` or None when the export has no answer.
    consent: str | None
    notes: str | None

    @property
    def key(self) -> tuple[str, str]:
        """What makes a referral the same one again: insurer IK and its case number."""
        return self.insurer_ik, self.referral_id


Parser = Callable[[str, Layout], Any]


def _text(value: str, layout: Layout) -> str:
    text = " ".join(value.split())
    if len(text) > 1000:
        raise check.Invalid("longer than 1000 characters")
    return text


def _notes(value: str, layout: Layout) -> str:
    text = value.strip()
    if len(text) > 10_000:
        raise check.Invalid("longer than 10,000 characters")
    return text


def _given(value: str, layout: Layout) -> tuple[str, ...]:
    return tuple(_text(value, layout).split(" "))


def _code(target: Target) -> Parser:
    def parse(value: str, layout: Layout) -> str:
        mapping = layout.values.get(target, {})
        code = mapping.get(value.strip().casefold())
        if code is None:
            known = ", ".join(sorted(mapping)) or "none"
            raise check.Invalid(f"unknown code (this layout knows {known})")
        return code

    return parse


def _birth_date(value: str, layout: Layout) -> date:
    day = check.parse_date(value, layout.source.date_formats)
    if day < _EARLIEST_BIRTH:
        raise check.Invalid("birth date before 1900")
    return day


def _diagnoses(value: str, layout: Layout) -> tuple[str, ...]:
    codes = [c for c in _LIST_SPLIT.split(value.strip()) if c]
    if not codes:
        raise check.Invalid("no ICD-10-GM code")
    return tuple(dict.fromkeys(check.icd10gm(c) for c in codes))


_PARSERS: dict[Target, tuple[str, Parser]] = {
    Target.REFERRAL_ID: ("referral_id", _text),
    Target.RECEIVED_AT: (
        "received_at",
        lambda v, lay: check.parse_datetime(
            v, lay.source.datetime_formats, lay.source.date_formats, lay.source.zone
        ),
    ),
    Target.NOTES: ("notes", _notes),
    Target.KVNR: ("kvnr", lambda v, _: check.kvnr(v)),
    Target.FAMILY: ("family", _text),
    Target.GIVEN: ("given", _given),
    Target.BIRTH_DATE: ("birth_date", _birth_date),
    Target.SEX: ("sex", _code(Target.SEX)),
    Target.POSTAL_CODE: ("postal_code", lambda v, _: check.postal_code(v)),
    Target.CITY: ("city", _text),
    Target.PHONE: ("phone", lambda v, _: check.phone(v)),
    Target.EMAIL: ("email", lambda v, _: check.email(v)),
    Target.INSURER_IK: ("insurer_ik", lambda v, _: check.ik(v)),
    Target.INSURER_NAME: ("insurer_name", _text),
    Target.DIAGNOSES: ("diagnoses", _diagnoses),
    Target.OPS_CODE: ("ops_code", lambda v, _: check.ops(v)),
    Target.OPS_TEXT: ("ops_text", _text),
    Target.SURGEON_LANR: ("surgeon_lanr", lambda v, _: check.lanr(v)),
    Target.SURGEON_NAME: ("surgeon_name", _text),
    Target.HOSPITAL_IK: ("hospital_ik", lambda v, _: check.ik(v)),
    Target.HOSPITAL_NAME: ("hospital_name", _text),
    Target.PLANNED_DATE: (
        "planned_date",
        lambda v, lay: check.parse_date(v, lay.source.date_formats),
    ),
    Target.CONSENT: ("consent", _code(Target.CONSENT)),
}
assert set(_PARSERS) == set(Target), "every target needs a parser"
assert all(t in _PARSERS for t in CANONICAL_CODES)


def check_constants(layout: Layout) -> None:
    """A constant is checked like a column value, once, when the layout is loaded."""
    for target, value in layout.constants.items():
        try:
            _PARSERS[target][1](value, layout)
        except check.Invalid as exc:
            raise LayoutError(f"constants.{target.value}: '{value}': {exc}") from exc


def referral_id_of(record: Record, layout: Layout) -> str:
    column = layout.column_of(Target.REFERRAL_ID)
    if column is None:
        return layout.constants.get(Target.REFERRAL_ID, "")
    return record.values.get(column, "").strip()


def parse(record: Record, layout: Layout) -> Referral | list[RowIssue]:
    """The referral in ``record``, or every problem found in it."""
    ref_id = referral_id_of(record, layout)

    def issue(field: str, value: str, reason: str) -> RowIssue:
        return RowIssue(record.row, record.line, ref_id, field, value, reason)

    if record.problem is not None:
        return [issue("-", "", record.problem)]
    issues: list[RowIssue] = []
    parsed: dict[str, Any] = {name: None for name, _ in _PARSERS.values()}
    sources = [(t, c, record.values.get(c, "")) for c, t in layout.columns.items()]
    sources += [(t, f"({t.value})", v) for t, v in layout.constants.items()]
    for target, column, raw in sources:
        name, parser = _PARSERS[target]
        if column in record.bad_values:
            issues.append(issue(column, raw, record.bad_values[column]))
            continue
        if not raw.strip():
            if target in REQUIRED:
                issues.append(issue(column, raw, "required"))
            continue
        try:
            parsed[name] = parser(raw, layout)
        except check.Invalid as exc:
            issues.append(issue(column, raw, str(exc)))
    born, received = parsed["birth_date"], parsed["received_at"]
    if born is not None and received is not None and born > received.date():
        column = layout.column_of(Target.BIRTH_DATE) or f"({Target.BIRTH_DATE.value})"
        raw = record.values.get(column, layout.constants.get(Target.BIRTH_DATE, ""))
        issues.append(issue(column, raw, "birth date after the referral was received"))
    if issues:
        return issues
    return Referral(row=record.row, line=record.line, **parsed)

"""The program report: figures of the second-opinion program computed from stored resources.

A referral belongs to the period by its receipt time; participants are referrals with a
fulfilled appointment; age is at receipt (docs/pathway.md). The data are read page by page
with ``_include``/``_revinclude`` (a few queries per thousand referrals, never one per case).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway.program import BASE, TEAM_SYSTEM
from fhir_server.pathway.referral import is_second_opinion
from fhir_server.pathway.view import (
    OBSERVATION_SYSTEM,
    VERDICT_SYSTEM,
    Doc,
    current_appointment,
    parse_date,
    receipt_time,
    references,
    team_service_id,
    within_48h,
)
from fhir_server.service.clock import instant
from fhir_server.service.resources import ResourceService, Unit
from fhir_server.storage.repository import StoredVersion

MEASURE = f"{BASE}/Measure/ivz-program-report"
_PAGE = 1000
_POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"


@dataclass(frozen=True, slots=True)
class Period:
    """Receipt dates from ``start`` to ``end``, both inclusive; either may be open."""

    start: date | None = None
    end: date | None = None

    def holds(self, when: datetime) -> bool:
        day = when.astimezone(UTC).date()
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)


def parse_period(start: str | None, end: str | None) -> Period:
    """``period-start``/``period-end`` as YYYY-MM-DD; 400 for anything else."""
    period = Period(_day(start, "period-start"), _day(end, "period-end"))
    if period.start and period.end and period.start > period.end:
        raise FhirError(400, "invalid", "period-start is after period-end", ("period-start",))
    return period


def _day(value: str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):  # not 2026-W01-1 and the like
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise FhirError(
            400, "value", f"Invalid {name} '{value[:40]}': expected YYYY-MM-DD", (name,)
        ) from exc


@dataclass(frozen=True, slots=True)
class Row:
    """One referral of the period, reduced to what the figures need."""

    receipt: datetime
    team: str | None
    booked: bool
    within48h: bool
    participant: bool
    outcome: str | None
    age: int | None
    female: bool


@dataclass
class Figures:
    """One column of the report (the program or one team)."""

    referrals: int = 0
    participants: int = 0
    confirmed: int = 0
    not_confirmed: int = 0
    booked: int = 0
    booked_within_48h: int = 0
    female: int = 0
    ages: list[int] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.referrals += 1
        if row.booked:
            self.booked += 1
            self.booked_within_48h += row.within48h
        if not row.participant:
            return
        self.participants += 1
        self.female += row.female
        if row.age is not None:
            self.ages.append(row.age)
        if row.outcome == "surgery-confirmed":
            self.confirmed += 1
        elif row.outcome == "surgery-not-recommended":
            self.not_confirmed += 1

    @property
    def decided(self) -> int:
        return self.confirmed + self.not_confirmed

    def as_json(self) -> dict[str, Any]:
        ages = self.ages
        return {
            "referrals": self.referrals,
            "participants": self.participants,
            "confirmed": self.confirmed,
            "not_confirmed": self.not_confirmed,
            "confirmed_percent": percent(self.confirmed, self.decided),
            "age_mean": round(statistics.fmean(ages), 1) if ages else None,
            "age_sd": round(statistics.stdev(ages), 1) if len(ages) > 1 else None,
            "female_percent": percent(self.female, self.participants),
            "booked": self.booked,
            "booked_within_48h": self.booked_within_48h,
            "booked_within_48h_percent": percent(self.booked_within_48h, self.booked),
        }


def percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass
class Report:
    period: Period
    overall: Figures
    #: team identifier -> (team name, figures), sorted by identifier.
    teams: dict[str, tuple[str, Figures]]
    first: date | None
    last: date | None

    def as_json(self) -> dict[str, Any]:
        out = {
            "period": {"start": _iso(self.period.start), "end": _iso(self.period.end)},
            **self.overall.as_json(),
        }
        out["teams"] = [
            {"team": team, "name": name, **figures.as_json()}
            for team, (name, figures) in self.teams.items()
        ]
        return out


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


# --- reading ----------------------------------------------------------------------------------


def program_report(service: ResourceService, period: Period) -> Report:
    """All figures, read in one read transaction."""
    with service.unit(write=False) as unit:
        verdicts = _verdict_outcomes(unit)
        rows: list[Row] = []
        services: set[str] = set()
        for referrals, included in _pages(
            unit,
            "ServiceRequest",
            [
                ("category", "http://snomed.info/sct|3457005"),
                ("intent", "order"),
                ("_include", "ServiceRequest:patient"),
                ("_revinclude", "Appointment:based-on"),
            ],
        ):
            patients, appointments = _index_included(included)
            for stored in referrals:
                referral = Doc.of(stored)
                if not is_second_opinion(referral.res) or referral.res.get("status") == (
                    "entered-in-error"
                ):
                    continue
                receipt = receipt_time(referral)
                if not period.holds(receipt):
                    continue
                row = _row(referral, receipt, patients, appointments, verdicts)
                rows.append(row)
                if row.team:
                    services.add(row.team)
        names = _team_names(unit, sorted(services))
    return _aggregate(period, rows, names)


def _pages(
    unit: Unit, resource_type: str, pairs: list[tuple[str, str]]
) -> Iterator[tuple[list[StoredVersion], list[StoredVersion]]]:
    """Every match of a search, a page at a time, with the page's included resources."""
    cursor: str | None = None
    while True:
        query = [*pairs, ("_count", str(_PAGE)), ("_total", "none")]
        if cursor:
            query.append(("_page", cursor))
        result = unit.find([resource_type], query)
        yield result.matches, result.included
        if not result.next_cursor or not result.matches:
            return
        cursor = result.next_cursor


def _verdict_outcomes(unit: Unit) -> dict[str, str]:
    """referral id -> outcome code of its current (newest) verdict."""
    newest: dict[str, tuple[datetime, str]] = {}
    pairs = [("code", f"{OBSERVATION_SYSTEM}|verdict"), ("status", "final,amended,corrected")]
    for matches, _ in _pages(unit, "Observation", pairs):
        for stored in matches:
            doc = Doc.of(stored).res
            outcome = next(
                (
                    c.get("code")
                    for c in (doc.get("valueCodeableConcept") or {}).get("coding") or []
                    if c.get("system") == VERDICT_SYSTEM
                ),
                None,
            )
            if outcome is None:
                continue
            for referral_id in references(doc.get("basedOn"), "ServiceRequest"):
                seen = newest.get(referral_id)
                if seen is None or seen[0] < stored.last_updated:
                    newest[referral_id] = (stored.last_updated, str(outcome))
    return {rid: outcome for rid, (_, outcome) in newest.items()}


def _index_included(
    included: list[StoredVersion],
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Patients by id and appointments by the referral ids they are based on."""
    patients: dict[str, dict[str, Any]] = {}
    appointments: dict[str, list[dict[str, Any]]] = {}
    for stored in included:
        res = Doc.of(stored).res
        if stored.resource_type == "Patient":
            patients[stored.id] = res
        elif stored.resource_type == "Appointment":
            for referral_id in references(res.get("basedOn"), "ServiceRequest"):
                appointments.setdefault(referral_id, []).append(res)
    return patients, appointments


def _row(
    referral: Doc,
    receipt: datetime,
    patients: dict[str, dict[str, Any]],
    appointments: dict[str, list[dict[str, Any]]],
    verdicts: dict[str, str],
) -> Row:
    rid = referral.stored.id
    booked = current_appointment(appointments.get(rid, []))
    patient_ids = references(referral.res.get("subject"), "Patient")
    patient = patients.get(patient_ids[0]) if patient_ids else None
    birth = parse_date((patient or {}).get("birthDate"))
    return Row(
        receipt=receipt,
        team=None if booked is None else team_service_id(booked),
        booked=booked is not None,
        within48h=booked is not None and within_48h(booked, receipt) is True,
        participant=booked is not None and booked.get("status") == "fulfilled",
        outcome=verdicts.get(rid),
        age=None if birth is None else _age(birth, receipt.date()),
        female=(patient or {}).get("gender") == "female",
    )


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _team_names(unit: Unit, service_ids: list[str]) -> dict[str, tuple[str, str]]:
    """HealthcareService id -> (team identifier, name)."""
    out: dict[str, tuple[str, str]] = {}
    for start in range(0, len(service_ids), 100):
        chunk = ",".join(service_ids[start : start + 100])
        for matches, _ in _pages(unit, "HealthcareService", [("_id", chunk)]):
            for stored in matches:
                res = Doc.of(stored).res
                ident = next(
                    (
                        i.get("value")
                        for i in res.get("identifier") or []
                        if i.get("system") == TEAM_SYSTEM and i.get("value")
                    ),
                    stored.id,
                )
                out[stored.id] = (str(ident), str(res.get("name") or ident))
    return out


def _aggregate(period: Period, rows: list[Row], names: dict[str, tuple[str, str]]) -> Report:
    overall = Figures()
    teams: dict[str, tuple[str, Figures]] = {}
    for row in rows:
        overall.add(row)
        if row.team is None:
            continue
        ident, name = names.get(row.team, (row.team, row.team))
        teams.setdefault(ident, (name, Figures()))[1].add(row)
    days = [r.receipt.date() for r in rows]
    return Report(
        period,
        overall,
        dict(sorted(teams.items())),
        min(days, default=None),
        max(days, default=None),
    )


# --- MeasureReport ----------------------------------------------------------------------------


def measure_report(report: Report, now: datetime) -> dict[str, Any]:
    """The figures as a FHIR MeasureReport (type summary) with a team stratifier per group."""
    start = report.period.start or report.first or now.date()
    end = report.period.end or report.last or now.date()
    groups = []
    for code, populations in _GROUPS:
        group: dict[str, Any] = {"code": _concept(code)}
        group.update(_scored(populations(report.overall)))
        strata = [
            {"value": {"text": team}, **_scored(populations(figures))}
            for team, (_, figures) in report.teams.items()
        ]
        if strata:
            group["stratifier"] = [{"code": [_concept("team")], "stratum": strata}]
        groups.append(group)
    return {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE,
        "date": instant(now),
        "period": {"start": start.isoformat(), "end": max(start, end).isoformat()},
        "group": groups,
    }


def _concept(code: str) -> dict[str, Any]:
    """Measure ivz-program-report identifies its groups and stratifier by code.text."""
    return {"text": code}


Populations = list[tuple[str, int]]


def _scored(populations: Populations) -> dict[str, Any]:
    """Populations, and a percentage score where the group is a proportion."""
    counts = dict(populations)
    out: dict[str, Any] = {
        "population": [
            {"code": {"coding": [{"system": _POPULATION, "code": code}]}, "count": count}
            for code, count in populations
        ]
    }
    if "numerator" in counts:
        score = percent(counts["numerator"], counts["denominator"])
        if score is not None:
            out["measureScore"] = {
                "value": score,
                "unit": "%",
                "system": "http://unitsofmeasure.org",
                "code": "%",
            }
    return out


#: group code -> populations of one column: the cohort (initial-population, as the Measure's
#: cohort scoring counts it) and, for proportions, numerator and denominator for the score.
_GROUPS: list[tuple[str, Any]] = [
    ("referrals", lambda f: [("initial-population", f.referrals)]),
    ("participants", lambda f: _proportion(f.participants, f.referrals)),
    ("confirmed", lambda f: _proportion(f.confirmed, f.decided)),
    ("not-confirmed", lambda f: _proportion(f.not_confirmed, f.decided)),
    ("booked-within-48h", lambda f: _proportion(f.booked_within_48h, f.booked)),
]


def _proportion(part: int, whole: int) -> Populations:
    return [("initial-population", part), ("numerator", part), ("denominator", whole)]

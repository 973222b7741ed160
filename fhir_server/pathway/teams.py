"""The 30 second-opinion teams as plain FHIR resources, and their bookable Slots.

A team (``data/teams.csv``) is an Organization, a Location (with its position), a
HealthcareService and a Schedule, all under the team number as id (``team-01`` …), so seeding
is an idempotent PUT. Slots are 90-minute consultations on workdays (Monday to Friday, German
local time); existing Slots are never rewritten, so re-seeding cannot free a booked Slot.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway.program import MULTIDISCIPLINARY, PAIN_MEDICINE, TEAM_SYSTEM
from fhir_server.service.resources import ResourceService
from fhir_server.service.validation import validate_resource

LOCAL = ZoneInfo("Europe/Berlin")
SLOT_MINUTES = 90
#: Consultations start at 08:00 with a quarter of an hour between them.
FIRST_SLOT = time(8, 0)
SLOT_STEP = timedelta(minutes=SLOT_MINUTES + 15)
MAX_SLOTS_PER_DAY = 6
MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class Team:
    number: str
    name: str
    street: str
    postal_code: str
    city: str
    latitude: float
    longitude: float


@dataclass(frozen=True, slots=True)
class SeedResult:
    teams: int
    team_resources_written: int
    slots_created: int


@cache
def teams() -> tuple[Team, ...]:
    """The program's teams, from ``data/teams.csv``."""
    text = resources.files("fhir_server.pathway").joinpath("data/teams.csv").read_text("utf-8")
    return tuple(
        Team(
            r["team"],
            r["name"],
            r["street"],
            r["postal_code"],
            r["city"],
            float(r["latitude"]),
            float(r["longitude"]),
        )
        for r in csv.DictReader(text.splitlines())
    )


def _identifier(team: Team) -> list[dict[str, str]]:
    return [{"system": TEAM_SYSTEM, "value": team.number}]


def _address(team: Team) -> dict[str, Any]:
    return {
        "use": "work",
        "line": [team.street],
        "city": team.city,
        "postalCode": team.postal_code,
        "country": "DE",
    }


def _ref(resource_type: str, team: Team) -> dict[str, str]:
    return {"reference": f"{resource_type}/{team.number}", "display": team.name}


def team_resources(team: Team) -> list[dict[str, Any]]:
    """Organization, Location, HealthcareService and Schedule of one team."""
    n = team.number
    return [
        {
            "resourceType": "Organization",
            "id": n,
            "identifier": _identifier(team),
            "active": True,
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                            "code": "prov",
                            "display": "Healthcare Provider",
                        }
                    ]
                }
            ],
            "name": team.name,
            "address": [_address(team)],
        },
        {
            "resourceType": "Location",
            "id": n,
            "identifier": _identifier(team),
            "status": "active",
            "name": team.name,
            "mode": "instance",
            "address": _address(team),
            "position": {"longitude": team.longitude, "latitude": team.latitude},
            "managingOrganization": _ref("Organization", team),
        },
        {
            "resourceType": "HealthcareService",
            "id": n,
            "identifier": _identifier(team),
            "active": True,
            "providedBy": _ref("Organization", team),
            "type": [{"coding": [MULTIDISCIPLINARY]}, {"coding": [PAIN_MEDICINE]}],
            "location": [_ref("Location", team)],
            "name": f"Interdisziplinäre Zweitmeinung Wirbelsäule, {team.name}",
        },
        {
            "resourceType": "Schedule",
            "id": n,
            "identifier": _identifier(team),
            "active": True,
            "serviceType": [{"coding": [MULTIDISCIPLINARY]}],
            "actor": [_ref("HealthcareService", team), _ref("Location", team)],
            "comment": "Interdisziplinäre Zweitmeinungssprechstunde (90 Minuten)",
        },
    ]


def slot_times(start: date, days: int, slots_per_day: int) -> Iterator[tuple[datetime, datetime]]:
    """(start, end) of each consultation on the workdays of [start, start + days)."""
    for offset in range(days):
        day = start + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        first = datetime.combine(day, FIRST_SLOT, LOCAL)
        for k in range(slots_per_day):
            begin = first + k * SLOT_STEP
            yield begin, begin + timedelta(minutes=SLOT_MINUTES)


def slot(team_number: str, begin: datetime, end: datetime) -> dict[str, Any]:
    """A free Slot of a team's Schedule; its id names team, day and time."""
    return {
        "resourceType": "Slot",
        "id": f"{team_number}-{begin:%Y%m%d-%H%M}",
        "schedule": {"reference": f"Schedule/{team_number}"},
        "serviceType": [{"coding": [MULTIDISCIPLINARY]}],
        "status": "free",
        "start": begin.isoformat(timespec="seconds"),
        "end": end.isoformat(timespec="seconds"),
    }


def _check(days: int, slots_per_day: int) -> None:
    if not 0 <= days <= MAX_DAYS:
        raise FhirError(422, "value", f"days must be between 0 and {MAX_DAYS}, not {days}")
    if not 1 <= slots_per_day <= MAX_SLOTS_PER_DAY:
        raise FhirError(
            422,
            "value",
            f"slots per day must be between 1 and {MAX_SLOTS_PER_DAY}, not {slots_per_day}",
        )


def seed_teams(
    service: ResourceService, start: date, days: int = 14, slots_per_day: int = 4
) -> SeedResult:
    """Create or refresh every team and add its missing Slots: one transaction per team."""
    _check(days, slots_per_day)
    times = list(slot_times(start, days, slots_per_day))
    written = created = 0
    for team in teams():
        docs = team_resources(team)
        for doc in docs:
            validate_resource(doc, doc["resourceType"])
        slots = [slot(team.number, b, e) for b, e in times]
        if slots:
            validate_resource(slots[0], "Slot")  # all slots share one shape
        keys = [(d["resourceType"], d["id"]) for d in [*docs, *slots]]
        with service.unit() as unit:
            have = unit.current_many(keys)
            results = unit.update_many([(doc, doc["id"], None) for doc in docs])
            written += sum(
                1
                for r, d in zip(results, docs, strict=True)
                if (d["resourceType"], d["id"]) not in have
                or have[(d["resourceType"], d["id"])].version_id != r.stored.version_id
            )
            missing = [(s, s["id"]) for s in slots if ("Slot", s["id"]) not in have]
            unit.create_many(missing)
            created += len(missing)
    if created:
        service.refresh_statistics()  # bookings search these Slots right away
    return SeedResult(len(teams()), written, created)

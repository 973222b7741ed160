"""Book a second-opinion referral on the nearest team's earliest Slot within 48 hours.

Runs inside the unit of the write that triggers it (``rules.py``). Free Slots are found with
the search service; each candidate is then locked (``SELECT … FOR UPDATE`` on PostgreSQL,
SQLite writers are serialised) and its status read again, so two concurrent referrals never
take the same Slot: the second one sees ``busy`` and moves on to the next candidate.
"""

from __future__ import annotations

import math
import uuid
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from fhir_server.fhir import jsonio
from fhir_server.fhir.ids import make_id
from fhir_server.logging import get_logger
from fhir_server.pathway import geo
from fhir_server.pathway.program import (
    APPOINTMENT_SYSTEM,
    BOOKING_NAMESPACE,
    EXT_DEADLINE,
    EXT_WITHIN_48H,
    MULTIDISCIPLINARY,
    SERVICE_TYPE,
    profile,
)
from fhir_server.pathway.referral import parse_time, patient_id
from fhir_server.service.clock import instant
from fhir_server.service.resources import Unit
from fhir_server.service.validation import validate_resource

log = get_logger(__name__)

WINDOW = timedelta(hours=48)
#: Candidates read per search; more than the Slots of 30 teams in two days.
MAX_CANDIDATES = 1000
#: Earliest Slots tried when nothing is free within the window: a first small read, then more.
FIRST_LATE_CANDIDATES = 8
MAX_LATE_CANDIDATES = 200


@dataclass(frozen=True, slots=True)
class TeamSchedule:
    """A Schedule offering the multidisciplinary consultation, with where its team is."""

    schedule_id: str
    service: dict[str, Any]
    location: dict[str, Any] | None
    position: geo.Position | None


@dataclass(frozen=True, slots=True)
class Candidate:
    slot_id: str
    schedule_id: str
    start: str


def booking_id(number: str) -> str:
    """The Appointment id of a booking number: what the SIU mapping derives from SCH-1
    ``<number>^IVZ`` (``make_id`` over SCH-1's components), so a clinic's message lands on it."""
    return make_id("Appointment", [f"{number}^{BOOKING_NAMESPACE}"])


#: Teams read once per unit: an import books hundreds of referrals in one unit.
_TEAMS: weakref.WeakKeyDictionary[Unit, dict[str, TeamSchedule]] = weakref.WeakKeyDictionary()


def team_schedules(unit: Unit) -> dict[str, TeamSchedule]:
    """Every active Schedule of service type 503 with its HealthcareService and Location."""
    known = _TEAMS.get(unit)
    if known is None:
        known = _TEAMS[unit] = _read_team_schedules(unit)
    return known


def _read_team_schedules(unit: Unit) -> dict[str, TeamSchedule]:
    """Two statements: every Schedule (a small, definitional type), then their actors."""
    schedules = {}
    for version in unit.all_of_type("Schedule"):
        schedule = _load(version.content)
        codes = {
            (c.get("system"), c.get("code"))
            for concept in schedule.get("serviceType", []) or []
            for c in concept.get("coding", []) or []
        }
        if schedule.get("active") is not False and (SERVICE_TYPE, "503") in codes:
            schedules[version.id] = schedule
    wanted = {
        (type_, id_)
        for schedule in schedules.values()
        for type_, id_ in (_split(a) for a in schedule.get("actor", []) or [])
        if type_ in ("HealthcareService", "Location")
    }
    actors = {
        f"{key[0]}/{key[1]}": _load(version.content)
        for key, version in unit.current_many(sorted(wanted)).items()
        if not version.deleted
    }
    out: dict[str, TeamSchedule] = {}
    for schedule_id, schedule in schedules.items():
        refs = ["/".join(_split(a)) for a in schedule.get("actor", []) or []]
        service = next((r for r in refs if r.startswith("HealthcareService/")), None)
        if service is None:
            continue
        location_ref = next((r for r in refs if r.startswith("Location/")), None)
        location = actors.get(location_ref) if location_ref else None
        out[schedule_id] = TeamSchedule(
            schedule_id,
            _reference(service, actors.get(service)),
            _reference(location_ref, location) if location_ref else None,
            _position(location),
        )
    return out


def _load(content: bytes | None) -> dict[str, Any]:
    """Stored JSON, parsed fast (orjson: decimals as floats are fine for these reads)."""
    value = orjson.loads(content) if content else {}
    return value if isinstance(value, dict) else {}


def _split(reference: Any) -> tuple[str, str]:
    ref = reference.get("reference") if isinstance(reference, dict) else None
    head, _, tail = str(ref or "").rpartition("/")
    return head.rpartition("/")[2], tail


def _reference(ref: str, resource: dict[str, Any] | None) -> dict[str, Any]:
    name = resource.get("name") if resource else None
    return {"reference": ref, "display": name} if isinstance(name, str) else {"reference": ref}


def _position(location: dict[str, Any] | None) -> geo.Position | None:
    position = (location or {}).get("position")
    if not isinstance(position, dict):
        return None
    try:
        return float(position["latitude"]), float(position["longitude"])
    except (KeyError, TypeError, ValueError):
        return None


def free_slots(
    unit: Unit,
    schedules: Collection[str],
    start: datetime,
    end: datetime | None,
    count: int,
    only: str | None = None,
) -> list[Candidate]:
    """Free Slots of these Schedules (or ``only`` that one) starting in [start, end], earliest
    first.

    The Schedules are filtered here, not in SQL: a list of 30 references costs the query
    builder more than skipping the odd Slot of another Schedule."""
    if not schedules:
        return []
    pairs = [
        ("status", "free"),
        ("start", f"ge{instant(start)}"),
        ("_sort", "start"),
        ("_count", str(count)),
        ("_total", "none"),
    ]
    if end is not None:
        pairs.append(("start", f"le{instant(end)}"))
    if only is not None:
        pairs.append(("schedule", f"Schedule/{only}"))
    found = unit.find(["Slot"], pairs)
    out = []
    for match in found.matches:
        slot = _load(match.content)
        schedule_type, schedule_id = _split(slot.get("schedule"))
        if schedule_type == "Schedule" and schedule_id in schedules:
            out.append(Candidate(match.id, schedule_id, str(slot.get("start"))))
    return out


def take_slot(
    unit: Unit, slot_id: str, start: datetime, end: datetime | None
) -> dict[str, Any] | None:
    """Lock the Slot, check it is still free and in the window, and mark it busy.

    The lock is taken in a savepoint that is rolled back when the Slot is no longer usable,
    which releases it: a booking only ever holds the lock of the one Slot it takes, so
    bookings that try the same Slots in different orders cannot deadlock.
    """
    savepoint = unit.savepoint()
    current = unit.current("Slot", slot_id, lock=True)
    slot: dict[str, Any] | None = None
    if current is not None and not current.deleted and current.content is not None:
        slot = jsonio.loads_trusted(current.content)
    if slot is None or not _usable(slot, start, end):
        savepoint.rollback()
        return None
    savepoint.commit()
    assert current is not None
    unit.update({**slot, "status": "busy"}, slot_id, if_match=current.version_id)
    return slot


def _usable(slot: dict[str, Any], start: datetime, end: datetime | None) -> bool:
    begins = parse_time(str(slot.get("start", "")))
    if slot.get("status") != "free" or begins is None or begins < start:
        return False
    return end is None or begins <= end


def rank(teams: dict[str, TeamSchedule], origin: geo.Position | None) -> list[str]:
    """Schedule ids, nearest team first (unknown distances last, then by id)."""

    def key(schedule_id: str) -> tuple[float, str]:
        where = teams[schedule_id].position
        if origin is None or where is None:
            return math.inf, schedule_id
        return geo.distance_km(origin, where), schedule_id

    return sorted(teams, key=key)


def patient_position(unit: Unit, patient: str | None) -> geo.Position | None:
    """The region centroid of the patient's postal code (home address first)."""
    if patient is None:
        return None
    current = unit.current("Patient", patient)
    if current is None or current.content is None:
        return None
    addresses = jsonio.loads_trusted(current.content).get("address") or []
    addresses = sorted(
        (a for a in addresses if isinstance(a, dict) and a.get("postalCode")),
        key=lambda a: a.get("use") != "home",
    )
    for address in addresses:
        found = geo.position_of_postal_code(str(address["postalCode"]))
        if found is not None:
            return found
    return None


def book(
    unit: Unit,
    referral: dict[str, Any],
    window_start: datetime,
    deadline: datetime,
    exclude: Collection[str] = (),
) -> dict[str, Any] | None:
    """Book the referral; the Appointment, or None (with a warning) when no Slot is free."""
    teams = team_schedules(unit)
    origin = patient_position(unit, patient_id(referral))
    ranked = rank(teams, origin)
    tried = set(exclude)

    def first_free(candidates: list[Candidate], end: datetime | None) -> dict[str, Any] | None:
        for candidate in candidates:
            if candidate.slot_id in tried:
                continue
            tried.add(candidate.slot_id)
            slot = take_slot(unit, candidate.slot_id, window_start, end)
            if slot is not None:
                team = teams[candidate.schedule_id]
                return _appoint(unit, referral, team, candidate, slot, deadline)
        return None

    # A referral received more than 48 h ago (an import of older cases) has no window left:
    # searching it would only read Slots that cannot qualify.
    if deadline >= window_start:
        if origin is not None and ranked:  # the usual case, with one small query
            nearest = free_slots(unit, teams, window_start, deadline, 5, only=ranked[0])
            if (done := first_free(nearest, deadline)) is not None:
                return done
        within = free_slots(unit, teams, window_start, deadline, MAX_CANDIDATES)
        if origin is not None:  # nearest team first; without a postal code, the earliest
            order = {schedule_id: n for n, schedule_id in enumerate(ranked)}
            within.sort(key=lambda c: order[c.schedule_id])  # stable: earliest within a team
        if (done := first_free(within, deadline)) is not None:
            return done
    # The earliest Slot anywhere: a few candidates first (usually the first is free), more
    # only when concurrent bookings took those.
    for count in (FIRST_LATE_CANDIDATES, MAX_LATE_CANDIDATES):
        late = free_slots(unit, teams, window_start, None, count)
        if (done := first_free(late, None)) is not None:
            return done
        if len(late) < count:
            break
    message = (
        f"ServiceRequest/{referral['id']} was stored but not booked: no team has a free Slot "
        f"after {instant(window_start)}"
    )
    unit.warnings.append(message)
    log.warning("referral not booked", referral=referral["id"], reason="no free slot")
    return None


def _appoint(
    unit: Unit,
    referral: dict[str, Any],
    team: TeamSchedule,
    candidate: Candidate,
    slot: dict[str, Any],
    deadline: datetime,
) -> dict[str, Any]:
    """The Appointment of a taken Slot (profile ivz-appointment)."""
    number = uuid.uuid4().hex[:12].upper()
    start = parse_time(str(slot["start"]))
    within = start is not None and start <= deadline
    participants = [
        {"actor": {"reference": f"Patient/{patient_id(referral)}"}, "status": "accepted"},
        {"actor": team.service, "required": "required", "status": "accepted"},
    ]
    if patient_id(referral) is None:
        participants = participants[1:]
    if team.location is not None:
        participants.append({"actor": team.location, "status": "accepted"})
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "meta": {"profile": [profile("ivz-appointment")]},
        "extension": [
            {"url": EXT_DEADLINE, "valueDateTime": instant(deadline)},
            {"url": EXT_WITHIN_48H, "valueBoolean": within},
        ],
        "identifier": [{"system": APPOINTMENT_SYSTEM, "value": number}],
        "status": "booked",
        "serviceType": [{"coding": [MULTIDISCIPLINARY]}],
        "description": "Interdisziplinäre Zweitmeinung (Wirbelsäule)",
        "start": slot["start"],
        "end": slot["end"],
        "created": instant(unit.clock()),
        "slot": [{"reference": f"Slot/{candidate.slot_id}"}],
        "basedOn": [{"reference": f"ServiceRequest/{referral['id']}"}],
        "participant": participants,
    }
    validate_resource(appointment, "Appointment")
    rid = booking_id(number)
    unit.create(appointment, rid)
    log.info(
        "referral booked",
        referral=referral["id"],
        appointment=rid,
        slot=candidate.slot_id,
        within_48h=within,
    )
    return {**appointment, "id": rid}

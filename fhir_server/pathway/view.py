"""One second-opinion case as stored, its pathway state and the ``$pathway`` Bundle.

The case facts (what a second-opinion referral is, its receipt time, which appointment counts,
the 48-hour check) live here once, so that ``$verdict``, ``$pathway`` and the program report
can never disagree about them (docs/pathway.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway.program import BASE
from fhir_server.pathway.program import EXT_WITHIN_48H as BOOKING_WITHIN_URL
from fhir_server.pathway.referral import is_second_opinion, local_date, parse_time
from fhir_server.search.fhirpath import split_reference
from fhir_server.service.clock import instant
from fhir_server.service.resources import Unit
from fhir_server.storage.repository import StoredVersion

OBSERVATION_SYSTEM = f"{BASE}/CodeSystem/ivz-observation"
VERDICT_SYSTEM = f"{BASE}/CodeSystem/ivz-verdict"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"

DEADLINE = timedelta(hours=48)
#: Appointments that hold the patient's place, in the order in which one counts for the case.
APPOINTMENT_RANK = ("fulfilled", "arrived", "checked-in", "booked", "pending", "proposed")
#: Observation statuses that carry a result the team may rely on.
RESULT_STATUS = frozenset({"final", "amended", "corrected"})
_MAX = ("_count", "1000")


@dataclass(frozen=True, slots=True)
class Doc:
    """A stored resource with its parsed content."""

    stored: StoredVersion
    res: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.stored.resource_type}/{self.stored.id}"

    @classmethod
    def of(cls, stored: StoredVersion) -> Doc:
        assert stored.content is not None
        return cls(stored, jsonio.loads_trusted(stored.content))


# --- case facts -------------------------------------------------------------------------------


def has_coding(concept: Any, system: str, code: str) -> bool:
    if not isinstance(concept, dict):
        return False
    return any(
        isinstance(c, dict) and c.get("system") == system and c.get("code") == code
        for c in concept.get("coding") or []
    )


def is_verdict(observation: dict[str, Any]) -> bool:
    return has_coding(observation.get("code"), OBSERVATION_SYSTEM, "verdict")


def parse_date(value: Any) -> date | None:
    return local_date(value)


def receipt_time(referral: Doc) -> datetime:
    """``authoredOn``, else the time the referral was written (docs/pathway.md)."""
    return parse_time(referral.res.get("authoredOn")) or referral.stored.last_updated


def reference_key(reference: Any) -> tuple[str, str] | None:
    """("Type", "id") of a literal reference (relative or absolute), else None."""
    if not isinstance(reference, dict):
        return None
    text = reference.get("reference")
    parsed = split_reference(text) if isinstance(text, str) else None
    if parsed is None or parsed.type is None or parsed.id is None:
        return None
    return parsed.type, parsed.id


def references(items: Any, resource_type: str) -> list[str]:
    """Ids of the references to ``resource_type`` in a list of Reference values."""
    out: list[str] = []
    for item in items if isinstance(items, list) else [items]:
        key = reference_key(item)
        if key is not None and key[0] == resource_type and key[1] not in out:
            out.append(key[1])
    return out


def extension_value(resource: dict[str, Any], url: str, key: str) -> Any:
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            return ext.get(key)
    return None


def current_appointment(appointments: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The appointment that counts: a fulfilled one first, else the earliest live one."""
    live = [a for a in appointments if a.get("status") in APPOINTMENT_RANK]
    if not live:
        return None

    def rank(a: dict[str, Any]) -> tuple[int, datetime]:
        start = parse_time(a.get("start")) or datetime.max.replace(tzinfo=UTC)
        return APPOINTMENT_RANK.index(str(a.get("status"))), start

    return min(live, key=rank)


def within_48h(appointment: dict[str, Any], receipt: datetime) -> bool | None:
    """The booking's own 48-hour flag when it has one, else start <= receipt + 48 h."""
    flag = extension_value(appointment, BOOKING_WITHIN_URL, "valueBoolean")
    if isinstance(flag, bool):
        return flag
    start = parse_time(appointment.get("start"))
    return None if start is None else start <= receipt + DEADLINE


def team_service_id(appointment: dict[str, Any]) -> str | None:
    """The HealthcareService (the team) taking part in an appointment."""
    for participant in appointment.get("participant") or []:
        if isinstance(participant, dict):
            found = references(participant.get("actor"), "HealthcareService")
            if found:
                return found[0]
    return None


# --- loading a case ---------------------------------------------------------------------------


@dataclass
class Case:
    """Everything stored about one referral, read in one transaction."""

    referral: Doc
    patient: Doc | None = None
    coverages: list[Doc] = field(default_factory=list)
    conditions: list[Doc] = field(default_factory=list)
    surgery: Doc | None = None
    consents: list[Doc] = field(default_factory=list)
    appointments: list[Doc] = field(default_factory=list)
    observations: list[Doc] = field(default_factory=list)
    care_plans: list[Doc] = field(default_factory=list)
    #: Appointment id -> when it was first written (for those without ``created``).
    booked_at: dict[str, datetime] = field(default_factory=dict)

    @property
    def assessments(self) -> list[Doc]:
        return [
            o
            for o in self.observations
            if not is_verdict(o.res) and o.res.get("status") in RESULT_STATUS
        ]

    @property
    def verdicts(self) -> list[Doc]:
        """Current verdicts (not withdrawn), newest first."""
        found = [
            o
            for o in self.observations
            if is_verdict(o.res) and o.res.get("status") in RESULT_STATUS
        ]
        return sorted(found, key=lambda d: d.stored.last_updated, reverse=True)

    @property
    def fulfilled(self) -> list[Doc]:
        return [a for a in self.appointments if a.res.get("status") == "fulfilled"]


def load_referral(unit: Unit, referral_id: str) -> Doc:
    """404 when unknown, 400 when it is not a second-opinion referral."""
    stored = unit.read("ServiceRequest", referral_id)
    doc = Doc.of(stored)
    if not is_second_opinion(doc.res):
        raise FhirError(
            400,
            "invalid",
            f"ServiceRequest/{referral_id} is not a second-opinion referral (intent order, "
            "category SNOMED 3457005, reasonCode v2-0336 S or code SNOMED 11429006)",
        )
    return doc


def load_case(unit: Unit, referral: Doc) -> Case:
    """The referral's resources: referenced ones by id, dependent ones by search."""
    res = referral.res
    case = Case(referral)
    patient_ids = references(res.get("subject"), "Patient")
    patients = _read(unit, "Patient", patient_ids[:1])
    case.patient = patients[0] if patients else None
    case.coverages = _read(unit, "Coverage", references(res.get("insurance"), "Coverage"))
    case.conditions = _read(unit, "Condition", references(res.get("reasonReference"), "Condition"))
    supporting = _read(
        unit, "ServiceRequest", references(res.get("supportingInfo"), "ServiceRequest")
    )
    case.surgery = next((d for d in supporting if d.res.get("intent") == "proposal"), None)
    on = f"ServiceRequest/{referral.stored.id}"
    if case.patient is not None:
        case.consents = _search(unit, "Consent", [("patient", case.patient.ref)])
    case.appointments = _search(unit, "Appointment", [("based-on", on)])
    for appointment in case.appointments:
        if "created" not in appointment.res:
            first = unit.vread("Appointment", appointment.stored.id, 1)
            case.booked_at[appointment.stored.id] = first.last_updated
    case.observations = _search(unit, "Observation", [("based-on", on)])
    case.care_plans = _search(unit, "CarePlan", [("based-on", on)])
    return case


def _read(unit: Unit, resource_type: str, ids: list[str]) -> list[Doc]:
    """Referenced resources that exist (a dangling reference is shown as nothing)."""
    out = []
    for rid in ids:
        try:
            out.append(Doc.of(unit.read(resource_type, rid)))
        except FhirError:
            continue
    return out


def _search(unit: Unit, resource_type: str, pairs: list[tuple[str, str]]) -> list[Doc]:
    """Every match, page after page (a case's resources are few; none may be left out)."""
    out: list[Doc] = []
    page: list[tuple[str, str]] = []
    while True:
        found = unit.find([resource_type], [*pairs, _MAX, ("_sort", "_lastUpdated"), *page])
        out += [Doc.of(s) for s in found.matches]
        if found.next_cursor is None:
            return out
        page = [("_page", found.next_cursor)]


# --- state ------------------------------------------------------------------------------------


def consent_on_hold(case: Case) -> str | None:
    """Why the case may not be decided for lack of consent, or None."""
    if case.referral.res.get("status") == "on-hold":
        return f"{case.referral.ref} is on hold (status on-hold)"
    sharing = [
        c
        for c in case.consents
        if has_coding(c.res.get("scope"), CONSENT_SCOPE, "patient-privacy")
        and c.res.get("status") in ("active", "rejected")
    ]
    if not sharing:
        return None
    latest = max(sharing, key=lambda c: parse_time(c.res.get("dateTime")) or c.stored.last_updated)
    provision = latest.res.get("provision") or {}
    if latest.res.get("status") == "rejected" or provision.get("type") == "deny":
        return f"the patient's data-sharing consent {latest.ref} is rejected or denies sharing"
    return None


@dataclass(frozen=True, slots=True)
class State:
    """Where a case stands on the pathway, with the time each step was reached."""

    state: str
    received: datetime
    scheduled: datetime | None
    assessed: datetime | None
    decided: datetime | None
    appointment_start: datetime | None
    deadline: datetime
    within48h: bool | None


def state_of(case: Case) -> State:
    received = receipt_time(case.referral)
    booked = current_appointment(a.res for a in case.appointments)
    scheduled = None
    if booked is not None:
        scheduled = parse_time(booked.get("created")) or case.booked_at.get(str(booked["id"]))
    assessed = min((_observed(o) for o in case.assessments), default=None)
    verdicts = case.verdicts
    decided = None
    if verdicts:
        decided = parse_time(verdicts[0].res.get("effectiveDateTime")) or _observed(verdicts[0])
    steps = (("decided", decided), ("assessed", assessed), ("scheduled", scheduled))
    state = next((name for name, when in steps if when is not None), "received")
    return State(
        state,
        received,
        scheduled,
        assessed,
        decided,
        None if booked is None else parse_time(booked.get("start")),
        received + DEADLINE,
        None if booked is None else within_48h(booked, received),
    )


def _observed(observation: Doc) -> datetime:
    res = observation.res
    period = res.get("effectivePeriod") or {}
    return (
        parse_time(res.get("effectiveDateTime"))
        or parse_time(res.get("effectiveInstant"))
        or parse_time(period.get("start"))
        or parse_time(res.get("issued"))
        or observation.stored.last_updated
    )


def state_parameters(state: State) -> dict[str, Any]:
    """The ``state`` Parameters resource that opens the ``$pathway`` Bundle."""
    params: list[dict[str, Any]] = [{"name": "state", "valueCode": state.state}]
    times = (
        ("received", state.received),
        ("scheduled", state.scheduled),
        ("assessed", state.assessed),
        ("decided", state.decided),
        ("appointmentStart", state.appointment_start),
        ("deadline", state.deadline),
    )
    params += [{"name": n, "valueDateTime": instant(t)} for n, t in times if t is not None]
    if state.within48h is not None:
        params.append({"name": "within48h", "valueBoolean": state.within48h})
    return {"resourceType": "Parameters", "parameter": params}


def case_documents(case: Case) -> list[Doc]:
    """The case's resources in the contract's order, each once."""
    ordered: list[Doc] = [case.referral]
    ordered += [case.patient] if case.patient else []
    ordered += case.coverages + case.conditions
    ordered += [case.surgery] if case.surgery else []
    ordered += case.consents + case.appointments
    verdicts = [o for o in case.observations if is_verdict(o.res)]
    ordered += [o for o in case.observations if not is_verdict(o.res)] + verdicts
    ordered += case.care_plans
    seen: set[str] = set()
    out = []
    for doc in ordered:
        if doc.ref not in seen:
            seen.add(doc.ref)
            out.append(doc)
    return out


@dataclass(frozen=True, slots=True)
class PathwayView:
    state: dict[str, Any]
    documents: list[Doc]


def pathway(unit: Unit, referral_id: str) -> PathwayView:
    """``$pathway``: the state Parameters and every resource of the case."""
    case = load_case(unit, load_referral(unit, referral_id))
    return PathwayView(state_parameters(state_of(case)), case_documents(case))

"""What makes a ServiceRequest a second-opinion referral, and when it was received."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhir_server.pathway.program import (
    CONSULTATION_CODE,
    LIVE_APPOINTMENT,
    REFERRAL_CATEGORY,
    SECOND_OPINION_REASON,
)
from fhir_server.search.fhirpath import split_reference
from fhir_server.service.resources import Unit

#: Dates without a time (``authoredOn: 2026-11-25``) start at local midnight.
LOCAL = ZoneInfo("Europe/Berlin")


def _codings(concepts: Any) -> set[tuple[str, str]]:
    if isinstance(concepts, dict):
        concepts = [concepts]
    if not isinstance(concepts, list):
        return set()
    return {
        (str(c.get("system")), str(c.get("code")))
        for concept in concepts
        if isinstance(concept, dict)
        for c in concept.get("coding", []) or []
        if isinstance(c, dict)
    }


def is_second_opinion(resource: dict[str, Any]) -> bool:
    """Intent order, category 3457005, and reason v2-0336 S or code 11429006 (contract)."""
    return (
        resource.get("resourceType") == "ServiceRequest"
        and resource.get("intent") == "order"
        and REFERRAL_CATEGORY in _codings(resource.get("category"))
        and (
            SECOND_OPINION_REASON in _codings(resource.get("reasonCode"))
            or CONSULTATION_CODE in _codings(resource.get("code"))
        )
    )


def parse_time(value: Any) -> datetime | None:
    """A FHIR date, dateTime or instant as an aware UTC datetime; partial dates and values
    without a zone are the program's local time (Europe/Berlin): a referral received on
    2026-03-02 counts from local midnight. The one parser of the pathway (booking, $pathway,
    the report), so their deadlines and periods agree."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if len(text) == 4:
        text += "-01-01"
    elif len(text) == 7:
        text += "-01"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=LOCAL)).astimezone(UTC)


def local_date(value: Any) -> date | None:
    """The program-local calendar day of a FHIR date/dateTime (report periods)."""
    when = parse_time(value)
    return None if when is None else when.astimezone(LOCAL).date()


def receipt(referral: dict[str, Any], written: datetime) -> datetime:
    """``authoredOn``, else the time of the write."""
    authored = referral.get("authoredOn")
    return (parse_time(authored) or written).astimezone(UTC)


def reference_id(reference: Any, resource_type: str) -> str | None:
    """The id in ``Type/id`` (also an absolute URL ending so), else None."""
    ref = reference.get("reference") if isinstance(reference, dict) else None
    parsed = split_reference(ref) if isinstance(ref, str) else None
    if parsed is None or parsed.type != resource_type:
        return None
    return parsed.id


def patient_id(resource: dict[str, Any]) -> str | None:
    return reference_id(resource.get("subject"), "Patient")


def live_appointments(unit: Unit, referral_id: str) -> list[str]:
    """Ids of the Appointments that book this referral now."""
    found = unit.find(
        ["Appointment"],
        [
            ("based-on", f"ServiceRequest/{referral_id}"),
            ("status", ",".join(LIVE_APPOINTMENT)),
            ("_count", "10"),
            ("_total", "none"),
        ],
    )
    return [m.id for m in found.matches]

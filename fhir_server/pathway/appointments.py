"""What happens when a booked Appointment changes: a clinic's update keeps the program's
elements, and a cancellation or no-show frees the Slot and books the referral again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from fhir_server.fhir import jsonio
from fhir_server.pathway.booking import WINDOW, book
from fhir_server.pathway.program import APPOINTMENT_SYSTEM, BASE
from fhir_server.pathway.referral import (
    is_second_opinion,
    live_appointments,
    receipt,
    reference_id,
)
from fhir_server.service.resources import Unit
from fhir_server.service.validation import validate_resource
from fhir_server.storage.repository import StoredVersion

#: Statuses after which the referral needs a new booking.
ENDED = ("cancelled", "noshow")


def _is_program(appointment: dict[str, Any]) -> bool:
    return any(
        isinstance(i, dict) and i.get("system") == APPOINTMENT_SYSTEM
        for i in appointment.get("identifier", []) or []
    )


def _union(first: list[Any], second: list[Any]) -> list[Any]:
    return [*first, *(item for item in second if item not in first)]


def _actor(participant: Any) -> Any:
    return participant.get("actor", {}).get("reference") if isinstance(participant, dict) else None


def keep_program_elements(
    unit: Unit,
    resource: dict[str, Any],
    current: StoredVersion | None,
    batch: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """An update without the booking number (a clinic's SIU) of a booked Appointment keeps
    the booking number, profile, extensions, Slot, basedOn and the team's participants."""
    if current is None or current.deleted or current.content is None or _is_program(resource):
        return resource
    stored = jsonio.loads_trusted(current.content)
    if not _is_program(stored):
        return resource
    merged = dict(resource)
    merged["identifier"] = _union(stored.get("identifier", []), resource.get("identifier", []))
    profiles = (stored.get("meta") or {}).get("profile", [])
    if profiles:
        meta = dict(resource.get("meta") or {})
        meta["profile"] = _union(profiles, meta.get("profile", []))
        merged["meta"] = meta
    program_ext = [e for e in stored.get("extension", []) if str(e.get("url", "")).startswith(BASE)]
    others = [e for e in resource.get("extension", []) if e not in program_ext]
    if program_ext or others:
        merged["extension"] = [*program_ext, *others]
    for key in ("basedOn", "slot"):
        both = _union(stored.get(key, []), resource.get(key, []))
        if both:
            merged[key] = both
    seen = {_actor(p) for p in stored.get("participant", [])}
    merged["participant"] = [
        *stored.get("participant", []),
        *(p for p in resource.get("participant", []) if _actor(p) not in seen),
    ]
    for key in ("serviceType", "created", "description"):
        if key in stored and key not in resource:
            merged[key] = stored[key]
    if "start" not in resource and "start" in stored:
        for key in ("start", "end", "minutesDuration"):
            if key in stored:
                merged[key] = stored[key]
    validate_resource(merged, "Appointment")
    return merged


def rebook_after_end(unit: Unit, doc: dict[str, Any], before: dict[str, Any] | None) -> None:
    """Cancelled: free its Slots; cancelled or no-show: book each referral it served again
    (new deadline max(receipt + 48 h, now + 48 h)), never on the Slots it held."""
    status = doc.get("status")
    if status not in ENDED or (before is not None and before.get("status") in ENDED):
        return
    slots = [s for s in (reference_id(r, "Slot") for r in doc.get("slot", [])) if s]
    if status == "cancelled":
        for slot_id in slots:
            _free(unit, slot_id)
    now = unit.clock().astimezone(UTC)
    for ref in doc.get("basedOn", []):
        referral_id = reference_id(ref, "ServiceRequest")
        if referral_id is None:
            continue
        current = unit.current("ServiceRequest", referral_id, lock=True)
        if current is None or current.content is None or current.deleted:
            continue
        referral = jsonio.loads_trusted(current.content)
        if referral.get("status") != "active" or not is_second_opinion(referral):
            continue
        if live_appointments(unit, referral_id):
            continue
        received = receipt(referral, current.last_updated)
        deadline = max(received + WINDOW, now + WINDOW)
        book(unit, referral, now, deadline, exclude=slots)


def _free(unit: Unit, slot_id: str) -> None:
    current = unit.current("Slot", slot_id, lock=True)
    if current is None or current.deleted or current.content is None:
        return
    slot = jsonio.loads_trusted(current.content)
    if slot.get("status") == "busy":
        unit.update({**slot, "status": "free"}, slot_id, if_match=current.version_id)

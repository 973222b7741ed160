"""The pathway's rules as service hooks (``fhir_server.service.hooks``): registered by the app,
the ``ivz`` commands and the demo, so that every write path books and attaches alike. The
adapters add their own (the outbound ORU^R01 of a verdict: ``adapters.hl7v2.outbound.register``)
where the service is composed, so the pathway does not depend on an adapter."""

from __future__ import annotations

from typing import Any

from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError, gone, not_found
from fhir_server.pathway.appointments import keep_program_elements, rebook_after_end
from fhir_server.pathway.attach import attach_assessment
from fhir_server.pathway.booking import WINDOW, book
from fhir_server.pathway.referral import is_second_opinion, live_appointments, parse_time, receipt
from fhir_server.service.hooks import Hooks
from fhir_server.service.resources import ResourceService, Unit
from fhir_server.storage.repository import StoredVersion


def book_new_referral(unit: Unit, doc: dict[str, Any], before: dict[str, Any] | None) -> None:
    """An active second-opinion referral without a live Appointment gets one."""
    if doc.get("status") != "active" or not is_second_opinion(doc):
        return
    if live_appointments(unit, doc["id"]):
        return
    written = parse_time(doc["meta"]["lastUpdated"]) or unit.clock()
    received = receipt(doc, written)
    book(unit, doc, max(received, unit.clock()), received + WINDOW)


#: Referral statuses that withdraw it: its open booking is cancelled (the Slot freed).
WITHDRAWN = frozenset({"revoked", "entered-in-error"})
#: Appointment statuses a withdrawal cancels (an arrived or fulfilled visit took place).
CANCELLABLE = frozenset({"proposed", "pending", "booked"})


def cancel_withdrawn_referral(
    unit: Unit, doc: dict[str, Any], before: dict[str, Any] | None
) -> None:
    """A referral revoked (e.g. REF^I14) or entered in error gives its booked Slot back."""
    if doc.get("status") not in WITHDRAWN or not is_second_opinion(doc):
        return
    if before is not None and before.get("status") in WITHDRAWN:
        return
    for appointment_id in live_appointments(unit, doc["id"]):
        current = unit.current("Appointment", appointment_id, lock=True)
        if current is None or current.deleted or current.content is None:
            continue
        appointment = jsonio.loads_trusted(current.content)
        if appointment.get("status") not in CANCELLABLE:
            continue
        reason = {"text": f"Referral {doc['status']}"}
        cancelled = {**appointment, "status": "cancelled", "cancelationReason": reason}
        unit.update(cancelled, appointment_id, if_match=current.version_id)


def pathway_hooks() -> Hooks:
    """Hooks with every pathway rule (docs/pathway.md: Booking, Assessment)."""
    hooks = Hooks()
    hooks.on_after("ServiceRequest", book_new_referral)
    hooks.on_after("ServiceRequest", cancel_withdrawn_referral)
    hooks.on_before("Appointment", keep_program_elements)
    hooks.on_after("Appointment", rebook_after_end)
    hooks.on_before("Observation", attach_assessment)
    return hooks


def book_referral(service: ResourceService, referral_id: str) -> StoredVersion:
    """``$book``: book an active, unbooked second-opinion referral now (contract deadline)."""
    with service.unit() as unit:
        current = unit.current("ServiceRequest", referral_id, lock=True)
        if current is None or current.content is None:
            raise not_found("ServiceRequest", referral_id)
        if current.deleted:
            raise gone("ServiceRequest", referral_id, current.version_id)
        doc: dict[str, Any] = jsonio.loads_trusted(current.content)
        if not is_second_opinion(doc):
            raise FhirError(400, "invalid", f"ServiceRequest/{referral_id} is not a referral")
        if doc.get("status") != "active":
            raise FhirError(
                409, "business-rule", f"The referral is {doc.get('status')}, not active"
            )
        booked = live_appointments(unit, referral_id)
        if booked:
            raise FhirError(409, "business-rule", f"Already booked: Appointment/{booked[0]}")
        received = receipt(doc, current.last_updated)
        appointment = book(unit, doc, max(received, unit.clock()), received + WINDOW)
        if appointment is None:
            raise FhirError(409, "business-rule", "No team has a free Slot; nothing was booked")
        return unit.read("Appointment", appointment["id"])

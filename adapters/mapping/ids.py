"""Deterministic resource ids; the rule lives in ``fhir_server.fhir.ids`` because the pathway
derives the id of a booked Appointment the same way (a clinic's SIU quoting the booking
number then lands on it)."""

from __future__ import annotations

from fhir_server.fhir.ids import make_id

__all__ = ["make_id"]

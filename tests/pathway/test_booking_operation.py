"""``POST /fhir/ServiceRequest/{id}/$book`` books a referral that found no Slot on arrival."""

from __future__ import annotations

import httpx

from fhir_server.service.resources import ResourceService
from tests.pathway.conftest import add_slot, patient, referral, soon, teams_without_slots


def test_book_books_a_referral_that_found_no_slot_and_refuses_a_second_time(
    pathway_service: ResourceService, pathway_client: httpx.Client
) -> None:
    teams_without_slots(pathway_service)
    made = pathway_client.post("/Patient", json=patient("24103"))
    posted = pathway_client.post("/ServiceRequest", json=referral(f"Patient/{made.json()['id']}"))
    assert posted.status_code == 201
    rid = posted.json()["id"]
    assert pathway_client.post(f"/ServiceRequest/{rid}/$book").status_code == 409
    slot = add_slot(pathway_service, "team-02", soon(3))
    booked = pathway_client.post(f"/ServiceRequest/{rid}/$book")
    assert booked.status_code == 201, booked.text
    assert booked.json()["slot"] == [{"reference": f"Slot/{slot}"}]
    assert booked.headers["Location"].split("/Appointment/")[1].startswith(booked.json()["id"])
    again = pathway_client.post(f"/ServiceRequest/{rid}/$book")
    assert again.status_code == 409
    assert "Already booked" in again.json()["issue"][0]["diagnostics"]
    assert pathway_client.post("/ServiceRequest/nope/$book").status_code == 404
    other = pathway_client.post("/ServiceRequest", json={**referral("Patient/x"), "intent": "plan"})
    assert pathway_client.post(f"/ServiceRequest/{other.json()['id']}/$book").status_code == 400

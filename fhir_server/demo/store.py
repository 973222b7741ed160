"""What the demo reads back from the store between steps (referral ids, bookings, teams).

The demo acts like the outside parties: it learns the bridge's booking from the stored
Appointment, never from its own plan, so a booking rule change shows up in the demo too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from adapters.insurer.resources import referral_system
from fhir_server.demo.cohort import INSURER_IK
from fhir_server.demo.messages import Visit
from fhir_server.fhir import jsonio
from fhir_server.pathway.program import APPOINTMENT_SYSTEM, TEAM_SYSTEM
from fhir_server.service.resources import ResourceService

_CHUNK = 100


def search_all(
    service: ResourceService, resource_type: str, pairs: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Every match of a search, all pages."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = [*pairs, ("_count", "1000"), ("_total", "none")]
        if cursor:
            query.append(("_page", cursor))
        result = service.search.search([resource_type], query)
        out += [jsonio.loads_trusted(m.content) for m in result.matches if m.content]
        cursor = result.next_cursor
        if not cursor or not result.matches:
            return out


class Lookups:
    """Read-backs on one service, with the team numbers cached (30 teams, read once each)."""

    def __init__(self, service: ResourceService) -> None:
        self.service = service
        self._teams: dict[str, str] = {}

    def referral_ids(self, numbers: Iterable[str]) -> dict[str, str]:
        """Case number -> id of the referral the insurer adapter created for it."""
        system = referral_system(INSURER_IK)
        wanted = list(numbers)
        found: dict[str, str] = {}
        for i in range(0, len(wanted), _CHUNK):
            tokens = ",".join(f"{system}|{n}" for n in wanted[i : i + _CHUNK])
            for res in search_all(self.service, "ServiceRequest", [("identifier", tokens)]):
                for ident in res.get("identifier") or []:
                    if ident.get("system") == system and ident.get("value") in wanted:
                        found[ident["value"]] = res["id"]
        return found

    def booked_visit(self, referral_id: str) -> Visit | None:
        """The referral's current ``booked`` Appointment, as the clinic is told of it."""
        found = search_all(
            self.service,
            "Appointment",
            [("based-on", f"ServiceRequest/{referral_id}"), ("status", "booked")],
        )
        if not found:
            return None
        appointment = min(found, key=lambda a: str(a.get("start")))
        team_ref = _team_service(appointment) or ""
        numbers = [
            i.get("value")
            for i in appointment.get("identifier") or []
            if i.get("system") == APPOINTMENT_SYSTEM
        ]
        return Visit(
            appointment_id=appointment["id"],
            booking_number=str(numbers[0]) if numbers else appointment["id"],
            team=self.team_number(team_ref) if team_ref else "team-00",
            team_service=team_ref,
            start=datetime.fromisoformat(appointment["start"]),
            end=datetime.fromisoformat(appointment["end"]),
        )

    def team_number(self, reference: str) -> str:
        """The team number (``team-07``) of a HealthcareService, from its identifier."""
        if reference not in self._teams:
            stored = self.service.read("HealthcareService", reference.split("/", 1)[1])
            res = jsonio.loads_trusted(stored.content or b"{}")
            numbers = [
                i.get("value")
                for i in res.get("identifier") or []
                if i.get("system") == TEAM_SYSTEM
            ]
            self._teams[reference] = str(numbers[0]) if numbers else "team-00"
        return self._teams[reference]


def _team_service(appointment: dict[str, Any]) -> str | None:
    for participant in appointment.get("participant") or []:
        reference = str((participant.get("actor") or {}).get("reference") or "")
        if reference.startswith("HealthcareService/"):
            return reference
    return None

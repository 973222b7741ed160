"""The 30 teams and their Slots (docs/pathway.md, "Teams, schedules and slots")."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from typer.testing import CliRunner

from fhir_server.cli import app
from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway import geo
from fhir_server.pathway.teams import seed_teams, teams
from fhir_server.service.resources import ResourceService
from tests.pathway.conftest import read, search

MONDAY = date(2030, 6, 3)
TEAM = "https://ivz-bridge.example/fhir/sid/team"


def test_thirty_teams_are_spread_over_germany() -> None:
    known = teams()
    assert [t.number for t in known] == [f"team-{n:02d}" for n in range(1, 31)]
    assert len({t.city for t in known}) == 30
    assert all(geo.position_of_postal_code(t.postal_code) for t in known)
    assert max(t.latitude for t in known) - min(t.latitude for t in known) > 5


def test_seeding_creates_each_team_as_four_linked_resources(
    pathway_service: ResourceService,
) -> None:
    seed_teams(pathway_service, MONDAY, days=0)
    for rtype in ("Organization", "Location", "HealthcareService", "Schedule"):
        found = search(pathway_service, rtype, ("identifier", f"{TEAM}|team-07"))
        assert [r["id"] for r in found] == ["team-07"], rtype
    location = read(pathway_service, "Location", "team-07")
    assert location["address"]["postalCode"] == "14467"
    assert location["managingOrganization"]["reference"] == "Organization/team-07"
    schedule = read(pathway_service, "Schedule", "team-07")
    assert [a["reference"] for a in schedule["actor"]] == [
        "HealthcareService/team-07",
        "Location/team-07",
    ]
    service = read(pathway_service, "HealthcareService", "team-07")
    assert {c["coding"][0]["code"] for c in service["type"]} == {"503", "164"}


def test_slots_are_ninety_minutes_on_workdays_only(pathway_service: ResourceService) -> None:
    result = seed_teams(pathway_service, MONDAY, days=7, slots_per_day=3)
    assert result.slots_created == 30 * 5 * 3
    slots = search(pathway_service, "Slot", ("schedule", "Schedule/team-01"), ("_sort", "start"))
    starts = [datetime.fromisoformat(s["start"]) for s in slots]
    assert {s.weekday() for s in starts} == {0, 1, 2, 3, 4}
    assert all(s["status"] == "free" for s in slots)
    first = slots[0]
    assert first["start"] == "2030-06-03T08:00:00+02:00"
    assert datetime.fromisoformat(first["end"]) - starts[0] == (
        datetime.fromisoformat("2030-06-03T09:30:00+02:00") - starts[0]
    )


def test_seeding_again_writes_nothing_and_keeps_booked_slots_busy(
    pathway_service: ResourceService,
) -> None:
    seed_teams(pathway_service, MONDAY, days=1, slots_per_day=1)
    slot = read(pathway_service, "Slot", "team-01-20300603-0800")
    pathway_service.update("Slot", slot["id"], {**slot, "status": "busy"})
    again = seed_teams(pathway_service, MONDAY, days=2, slots_per_day=1)
    assert (again.team_resources_written, again.slots_created) == (0, 30)
    assert read(pathway_service, "Slot", "team-01-20300603-0800")["status"] == "busy"
    assert pathway_service.read("Organization", "team-01").version_id == 1


def test_impossible_slot_counts_are_refused(pathway_service: ResourceService) -> None:
    with pytest.raises(FhirError) as refused:
        seed_teams(pathway_service, MONDAY, days=1, slots_per_day=0)
    assert refused.value.status == 422


def test_ivz_seed_teams_seeds_the_database(pathway_url: str, pathway_db: object) -> None:
    args = ["seed", "teams", "--database-url", pathway_url, "--start", "2030-06-03", "--days", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "30 teams" in result.output and "120 slots created" in result.output


def test_a_bad_start_date_is_a_usage_error(pathway_url: str) -> None:
    args = ["seed", "teams", "--database-url", pathway_url, "--start", "03.06.2030"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2


def test_postal_code_regions_give_distances_in_kilometres() -> None:
    hamburg = geo.position_of_postal_code("20095")
    munich = geo.position_of_postal_code("80331")
    assert hamburg and munich
    assert 600 < geo.distance_km(hamburg, munich) < 625
    assert geo.position_of_postal_code("1234") is None
    assert geo.position_of_postal_code("A1234") is None


def test_the_pathway_rules_apply_only_while_an_ivz_command_runs(pathway_url: str) -> None:
    from fhir_server.service import hooks

    CliRunner().invoke(app, ["db", "current", "--database-url", pathway_url])
    assert not hooks.default()

"""``$pathway``: the case Bundle's content, order and state, as a use case and over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway.verdict import record_verdict
from fhir_server.pathway.view import PathwayView, pathway
from fhir_server.service.clock import instant
from fhir_server.service.resources import ResourceService
from tests.conftest import STORES
from tests.pathway.case_builder import (
    CaseSpec,
    case_resources,
    live_client,
    post,
    team_resources,
    unique,
    verdict_parameters,
    write,
)


@pytest.fixture(scope="module", params=STORES)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """One real server per store for this module's HTTP tests (cases get unique ids)."""
    yield from live_client(str(request.param), tmp_path_factory.mktemp("pathway-http"))


def _view(service: ResourceService, referral: str) -> PathwayView:
    with service.unit(write=False) as unit:
        return pathway(unit, referral)


def _state(view: PathwayView) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in view.state["parameter"]:
        out[p["name"]] = next(v for k, v in p.items() if k.startswith("value"))
    return out


def test_new_referral_is_received_with_its_deadline(pathway_service: ResourceService) -> None:
    spec = CaseSpec("v1", appointment=None, assessments=0)
    write(pathway_service, case_resources(spec))
    state = _state(_view(pathway_service, spec.referral))
    assert state == {
        "state": "received",
        "received": "2026-03-02T08:00:00.000+00:00",
        "deadline": "2026-03-04T08:00:00.000+00:00",
    }


def test_booked_referral_is_scheduled_with_start_and_48h_check(
    pathway_service: ResourceService,
) -> None:
    spec = CaseSpec("v2", appointment="booked", assessments=0, start="2026-03-04T09:00:00+00:00")
    write(pathway_service, team_resources("team-01") + case_resources(spec))
    state = _state(_view(pathway_service, spec.referral))
    assert state["state"] == "scheduled"
    assert state["appointmentStart"] == "2026-03-04T09:00:00.000+00:00"
    assert state["within48h"] is False  # 49 hours after receipt
    assert "scheduled" in state and "assessed" not in state


def test_scheduled_is_when_the_appointment_was_created(pathway_service: ResourceService) -> None:
    spec = CaseSpec("v7", appointment="booked", assessments=0)
    resources = case_resources(spec)
    for res in resources:
        if res["resourceType"] == "Appointment":
            res["created"] = "2026-03-02T08:05:00+00:00"
    write(pathway_service, resources)
    assert _state(_view(pathway_service, spec.referral))["scheduled"] == (
        "2026-03-02T08:05:00.000+00:00"
    )


def test_scheduled_without_created_is_the_first_write(pathway_service: ResourceService) -> None:
    spec = CaseSpec("v8", appointment="booked", assessments=0)
    write(pathway_service, case_resources(spec))
    first = pathway_service.read("Appointment", spec.appointment_id).last_updated
    fulfilled = [r for r in case_resources(spec) if r["resourceType"] == "Appointment"]
    fulfilled[0]["status"] = "fulfilled"
    write(pathway_service, fulfilled)
    scheduled = _state(_view(pathway_service, spec.referral))["scheduled"]
    assert scheduled == instant(first)


def test_booking_extension_decides_the_48h_check(pathway_service: ResourceService) -> None:
    spec = CaseSpec(
        "v3",
        appointment="booked",
        assessments=0,
        start="2026-03-04T09:00:00+00:00",
        within48h_extension=True,
    )
    write(pathway_service, team_resources("team-01") + case_resources(spec))
    assert _state(_view(pathway_service, spec.referral))["within48h"] is True


def test_assessed_referral_reports_its_first_assessment(pathway_service: ResourceService) -> None:
    spec = CaseSpec("v4", assessments=2)
    write(pathway_service, team_resources("team-01") + case_resources(spec))
    state = _state(_view(pathway_service, spec.referral))
    assert state["state"] == "assessed"
    assert state["assessed"] == "2026-03-03T10:00:00.000+00:00"
    assert state["within48h"] is True


def test_decided_referral_reports_the_verdict_time(pathway_service: ResourceService) -> None:
    spec = CaseSpec("v5")
    write(pathway_service, team_resources("team-01") + case_resources(spec))
    result = record_verdict(pathway_service, spec.referral, verdict_parameters())
    state = _state(_view(pathway_service, spec.referral))
    assert state["state"] == "decided"
    assert state["decided"].startswith(result.verdict.last_updated.date().isoformat())


def test_bundle_lists_the_case_in_contract_order(pathway_service: ResourceService) -> None:
    spec = CaseSpec("v6")
    write(pathway_service, team_resources("team-01") + case_resources(spec))
    result = record_verdict(pathway_service, spec.referral, verdict_parameters())
    refs = [d.ref for d in _view(pathway_service, spec.referral).documents]
    assert refs == [
        f"ServiceRequest/{spec.referral}",
        f"Patient/{spec.patient}",
        "Coverage/v6-coverage",
        f"Condition/{spec.condition}",
        f"ServiceRequest/{spec.surgery}",
        "Consent/v6-consent",
        f"Appointment/{spec.appointment_id}",
        *[f"Observation/{o}" for o in spec.assessment_ids()],
        f"Observation/{result.verdict.id}",
        f"CarePlan/{result.care_plan.id}",
    ]


def test_pathway_of_an_unknown_referral_is_404(pathway_service: ResourceService) -> None:
    with pytest.raises(FhirError) as caught:
        _view(pathway_service, "missing")
    assert caught.value.status == 404


def test_pathway_over_http_is_a_collection_with_state_first(client: httpx.Client) -> None:
    spec = CaseSpec(unique("h1"))
    post(client, team_resources("team-01") + case_resources(spec))
    response = client.get(f"/ServiceRequest/{spec.referral}/$pathway")
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "collection"
    first = bundle["entry"][0]["resource"]
    assert first["resourceType"] == "Parameters"
    assert first["parameter"][0] == {"name": "state", "valueCode": "assessed"}
    assert bundle["entry"][1]["fullUrl"].endswith(f"/ServiceRequest/{spec.referral}")
    assert len(bundle["entry"]) == 10


def test_pathway_over_http_refuses_what_is_not_a_referral(client: httpx.Client) -> None:
    spec = CaseSpec(unique("h2"))
    post(client, case_resources(spec))
    response = client.get(f"/ServiceRequest/{spec.surgery}/$pathway")
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_pathway_over_http_speaks_xml(client: httpx.Client) -> None:
    spec = CaseSpec(unique("h3"))
    post(client, case_resources(spec))
    response = client.get(f"/ServiceRequest/{spec.referral}/$pathway", params={"_format": "xml"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+xml")
    assert (
        response.text.count("<Parameters>") == 1 and '<type value="collection"/>' in response.text
    )


def test_every_assessment_is_listed_beyond_one_page(
    pathway_service: ResourceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The case's searches page on: none of its resources is silently left out."""
    import fhir_server.pathway.view as view_module

    spec = CaseSpec(unique("paged"), assessments=5)
    write(pathway_service, team_resources("team-01") + case_resources(spec))
    monkeypatch.setattr(view_module, "_MAX", ("_count", "2"))
    listed = {d.stored.id for d in _view(pathway_service, spec.referral).documents}
    assert set(spec.assessment_ids()) <= listed

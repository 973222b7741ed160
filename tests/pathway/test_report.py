"""The program report: exact figures from a small known dataset, the period filter, the
MeasureReport, the JSON page and the SVG figure."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway.report import Period, measure_report, parse_period, program_report
from fhir_server.pathway.svg import program_svg
from fhir_server.pathway.verdict import amend_verdict, record_verdict
from fhir_server.service.resources import ResourceService
from fhir_server.service.validation import validate_resource
from tests.conftest import STORES
from tests.pathway.case_builder import (
    CaseSpec,
    case_resources,
    live_client,
    post,
    team_resources,
    verdict_parameters,
    write,
)

MARCH = Period(datetime(2026, 3, 1).date(), datetime(2026, 3, 31).date())
ODD_NAME = 'Schmerzzentrum Süd & <Ost> "2"'

#: (case, verdict outcome): five referrals in March 2026, one in April.
CASES: list[tuple[CaseSpec, str | None]] = [
    (CaseSpec("r1", team="team-01", birth="1960-03-01"), "surgery-confirmed"),
    (
        CaseSpec(
            "r2",
            team="team-01",
            gender="male",
            birth="1970-06-15",
            start="2026-03-05T09:00:00+00:00",
        ),
        "surgery-not-recommended",
    ),
    (CaseSpec("r3", team="team-02", birth="1980-01-01"), "surgery-not-recommended"),
    (CaseSpec("r4", team="team-02", gender="male", birth="1990-05-05", appointment="booked"), None),
    (CaseSpec("r5", appointment=None, assessments=0), None),
    (
        CaseSpec(
            "r6",
            team="team-01",
            authored="2026-04-10T08:00:00+00:00",
            start="2026-04-11T09:00:00+00:00",
        ),
        "surgery-confirmed",
    ),
]


def _resources() -> list[dict[str, Any]]:
    out = team_resources("team-01", "Schmerzzentrum Nord") + team_resources("team-02", ODD_NAME)
    for spec, _ in CASES:
        out += case_resources(spec)
    return out


def _params(spec: CaseSpec, outcome: str) -> dict[str, Any]:
    return verdict_parameters(outcome, team=f"HealthcareService/hs-{spec.team}")


@pytest.fixture()
def dataset(pathway_service: ResourceService) -> ResourceService:
    write(pathway_service, _resources())
    for spec, outcome in CASES:
        if outcome:
            record_verdict(pathway_service, spec.referral, _params(spec, outcome))
    return pathway_service


@pytest.fixture(scope="module", params=STORES)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """A real server per store holding the dataset (the HTTP tests only read it)."""
    for live in live_client(str(request.param), tmp_path_factory.mktemp("report-http")):
        post(live, _resources())
        for spec, outcome in CASES:
            if outcome:
                url = f"/ServiceRequest/{spec.referral}/$verdict"
                assert live.post(url, json=_params(spec, outcome)).status_code == 200
        yield live


def test_figures_of_the_period(dataset: ResourceService) -> None:
    figures = program_report(dataset, MARCH).as_json()
    figures.pop("teams")
    assert figures == {
        "period": {"start": "2026-03-01", "end": "2026-03-31"},
        "referrals": 5,
        "participants": 3,
        "confirmed": 1,
        "not_confirmed": 2,
        "confirmed_percent": 33.3,
        "age_mean": 55.7,
        "age_sd": 10.0,
        "female_percent": 66.7,
        "booked": 4,
        "booked_within_48h": 3,
        "booked_within_48h_percent": 75.0,
    }


def test_figures_per_team(dataset: ResourceService) -> None:
    teams = program_report(dataset, MARCH).as_json()["teams"]
    assert [(t["team"], t["name"]) for t in teams] == [
        ("team-01", "Schmerzzentrum Nord"),
        ("team-02", ODD_NAME),
    ]
    one, two = teams
    assert (one["referrals"], one["participants"], one["confirmed"], one["not_confirmed"]) == (
        2,
        2,
        1,
        1,
    )
    assert (one["confirmed_percent"], one["age_mean"], one["age_sd"]) == (50.0, 60.5, 7.8)
    assert (one["female_percent"], one["booked_within_48h_percent"]) == (50.0, 50.0)
    assert (two["referrals"], two["participants"], two["not_confirmed"]) == (2, 1, 1)
    assert (two["confirmed_percent"], two["age_mean"], two["age_sd"]) == (0.0, 46.0, None)
    assert (two["female_percent"], two["booked_within_48h_percent"]) == (100.0, 100.0)


def test_without_period_every_referral_counts(dataset: ResourceService) -> None:
    figures = program_report(dataset, Period()).as_json()
    assert (figures["referrals"], figures["participants"], figures["confirmed"]) == (6, 4, 2)
    assert figures["period"] == {"start": None, "end": None}


def test_period_end_day_is_inclusive(dataset: ResourceService) -> None:
    april_tenth = Period(datetime(2026, 4, 10).date(), datetime(2026, 4, 10).date())
    assert program_report(dataset, april_tenth).overall.referrals == 1


def test_amended_verdict_counts_with_its_new_outcome(dataset: ResourceService) -> None:
    spec = CASES[0][0]
    params = verdict_parameters("surgery-not-recommended", reason="Second look.")
    amend_verdict(dataset, spec.referral, params)
    figures = program_report(dataset, MARCH).as_json()
    assert (figures["confirmed"], figures["not_confirmed"]) == (0, 3)


def test_empty_store_has_no_percentages(pathway_service: ResourceService) -> None:
    figures = program_report(pathway_service, MARCH).as_json()
    assert figures["referrals"] == 0
    assert figures["confirmed_percent"] is None and figures["age_mean"] is None
    assert figures["teams"] == []


def test_measure_report_validates_and_carries_the_groups(dataset: ResourceService) -> None:
    report = measure_report(program_report(dataset, MARCH), datetime(2026, 5, 1, tzinfo=UTC))
    validate_resource(report, "MeasureReport")
    assert report["measure"] == "https://ivz-bridge.example/fhir/Measure/ivz-program-report"
    assert (report["status"], report["type"]) == ("complete", "summary")
    assert report["period"] == {"start": "2026-03-01", "end": "2026-03-31"}
    groups = {g["code"]["text"]: g for g in report["group"]}
    assert list(groups) == [
        "referrals",
        "participants",
        "confirmed",
        "not-confirmed",
        "booked-within-48h",
    ]
    confirmed = groups["confirmed"]
    assert confirmed["measureScore"]["value"] == 33.3
    counts = {p["code"]["coding"][0]["code"]: p["count"] for p in confirmed["population"]}
    assert counts == {"initial-population": 1, "denominator": 3, "numerator": 1}
    strata = confirmed["stratifier"][0]["stratum"]
    assert [s["value"]["text"] for s in strata] == ["team-01", "team-02"]


def test_empty_measure_report_validates(pathway_service: ResourceService) -> None:
    report = measure_report(program_report(pathway_service, Period()), datetime.now(UTC))
    validate_resource(report, "MeasureReport")


def test_svg_is_xml_with_one_row_per_team_and_escaped_names(dataset: ResourceService) -> None:
    svg = program_svg(program_report(dataset, MARCH))
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any("Program" in t for t in texts)
    assert any("<Ost>" in t for t in texts)
    assert len(root.findall("{http://www.w3.org/2000/svg}g")) == 3


@pytest.mark.parametrize("start", ["2026-3-1", "yesterday", "2026-02-30", "2026-W01-1"])
def test_malformed_period_is_refused(start: str) -> None:
    with pytest.raises(FhirError) as caught:
        parse_period(start, None)
    assert caught.value.status == 400 and "period-start" in caught.value.diagnostics


def test_period_start_after_end_is_refused() -> None:
    with pytest.raises(FhirError) as caught:
        parse_period("2026-04-01", "2026-03-01")
    assert caught.value.status == 400


def _page(client: httpx.Client, path: str) -> str:
    return str(client.base_url).rstrip("/").removesuffix("/fhir") + path


def test_program_json_page_has_the_contract_keys(client: httpx.Client) -> None:
    url = _page(client, "/report/program.json")
    response = client.get(url, params={"period-start": "2026-03-01", "period-end": "2026-03-31"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    keys = {
        "referrals",
        "participants",
        "confirmed",
        "not_confirmed",
        "confirmed_percent",
        "age_mean",
        "age_sd",
        "female_percent",
        "booked_within_48h_percent",
        "teams",
    }
    assert keys <= set(body)
    assert keys - {"teams"} | {"team", "name"} <= set(body["teams"][0])
    assert (body["referrals"], body["confirmed_percent"]) == (5, 33.3)


def test_program_svg_page_is_svg(client: httpx.Client) -> None:
    response = client.get(_page(client, "/report/program.svg"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert ET.fromstring(response.text).tag == "{http://www.w3.org/2000/svg}svg"


def test_program_report_operation_returns_a_measure_report(client: httpx.Client) -> None:
    response = client.get(
        "/$program-report", params={"period-start": "2026-03-01", "period-end": "2026-03-31"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["resourceType"] == "MeasureReport"
    assert report["group"][0]["population"][0]["count"] == 5
    validate_resource(report, "MeasureReport")


def test_program_report_refuses_a_malformed_period(client: httpx.Client) -> None:
    response = client.get("/$program-report", params={"period-start": "March"})
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["period-start"]

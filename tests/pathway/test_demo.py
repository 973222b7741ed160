"""``ivz demo``: a synthetic cohort through insurer export, MLLP and $verdict, on each store.

The figures the demo reports are checked against what plain searches of the stored resources
give, never against the generator's parameters.
"""

from __future__ import annotations

import json
import statistics
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from adapters.hl7v2.convert import convert
from fhir_server.cli import app
from fhir_server.demo.cohort import generate
from fhir_server.demo.messages import Visit, oru
from fhir_server.demo.run import DemoOptions, DemoResult, run_demo
from fhir_server.demo.store import search_all
from fhir_server.pathway.program import BASE
from fhir_server.service.resources import ResourceService
from fhir_server.storage import migrate
from fhir_server.storage.database import Database

VERDICT = f"{BASE}/CodeSystem/ivz-observation|verdict"
ASSESSMENT_LOINC = {"72514-3", "97909-6", "44261-6", "70274-6"}
#: What each participant's ORU reports (docs/pathway.md, ValueSet ivz-assessment-code).
PROGRAM_CODES = ("mpss-stage", "exam-neuro-deficit", "exam-lasegue", "exam-finger-floor")
ASSESSMENT = {f"http://loinc.org|{c}" for c in ASSESSMENT_LOINC} | {
    f"{BASE}/CodeSystem/ivz-observation|{c}" for c in (*PROGRAM_CODES, "exam-summary")
}


def _versions(db: Database) -> tuple[int, int]:
    """Every stored resource version and HL7 message: a second run must add none."""
    with db.read() as conn:
        versions = conn.execute(text("SELECT count(*) FROM resource_versions")).scalar_one()
        messages = conn.execute(text("SELECT count(*) FROM hl7_messages")).scalar_one()
    return int(versions), int(messages)


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _by_referral(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        for ref in doc.get("basedOn") or []:
            out.setdefault(ref["reference"].removeprefix("ServiceRequest/"), []).append(doc)
    return out


def _facts(service: ResourceService) -> dict[str, Any]:
    """The report's figures, recomputed from searches of the store."""
    referrals = search_all(
        service, "ServiceRequest", [("category", "http://snomed.info/sct|3457005")]
    )
    appointments = _by_referral(search_all(service, "Appointment", [("status", "fulfilled")]))
    verdicts = _by_referral(search_all(service, "Observation", [("code", VERDICT)]))
    plans = _by_referral(search_all(service, "CarePlan", []))
    codes = ",".join(sorted(ASSESSMENT))
    results = _by_referral(search_all(service, "Observation", [("code", codes)]))
    participants = [r for r in referrals if r["id"] in appointments]
    outcomes = [
        verdicts[r["id"]][0]["valueCodeableConcept"]["coding"][0]["code"] for r in participants
    ]
    ages, female = [], 0
    for referral in participants:
        patient = service.read("Patient", referral["subject"]["reference"].split("/")[1])
        res = json.loads(patient.content or b"{}")
        received = datetime.fromisoformat(referral["authoredOn"]).date()
        ages.append(_age(date.fromisoformat(res["birthDate"]), received))
        female += res.get("gender") == "female"
    return {
        "referrals": referrals,
        "participants": participants,
        "verdicts": verdicts,
        "plans": plans,
        "results": results,
        "figures": {
            "referrals": len(referrals),
            "participants": len(participants),
            "confirmed": outcomes.count("surgery-confirmed"),
            "not_confirmed": outcomes.count("surgery-not-recommended"),
            "age_mean": round(statistics.fmean(ages), 1),
            "female_percent": round(100 * female / len(participants), 1),
        },
    }


def _run(url: str, **options: Any) -> tuple[Database, DemoResult]:
    db = Database(url)
    migrate.upgrade(db)
    return db, run_demo(db, DemoOptions(**options))


def test_the_demo_takes_every_referral_through_the_pathway_and_reports_the_store(
    pathway_url: str,
) -> None:
    db, result = _run(pathway_url, referrals=30, seed=11, weeks=3)
    try:
        tally = result.tally
        assert not result.skipped
        assert tally.rows == 30 and tally.rejected == 0
        assert tally.unbooked == [] and tally.pending == []
        assert set(tally.acks) == {"AA"}
        service = ResourceService(db)
        facts = _facts(service)
        active = [r for r in facts["referrals"] if r["status"] != "on-hold"]
        assert len(facts["referrals"]) == 30
        assert len(active) == 30 - len(tally.on_hold)
        for referral in active:  # booked, assessed, decided
            rid = referral["id"]
            assert referral["status"] == "completed"
            assert referral in facts["participants"]
            assert len(facts["verdicts"][rid]) == 1
            assert len(facts["plans"][rid]) == 1
            codes = {
                f"{c['system']}|{c['code']}"
                for o in facts["results"].get(rid, [])
                for c in o["code"]["coding"]
            }
            assert codes == ASSESSMENT
        report = result.report.as_json()
        for key, value in facts["figures"].items():
            assert report[key] == value, key
        assert sum(t["participants"] for t in report["teams"]) == report["participants"]

        before = _versions(db)
        again = run_demo(db, DemoOptions(referrals=30, seed=11, weeks=3))
        assert again.skipped
        assert _versions(db) == before
        assert again.report.as_json() == report
    finally:
        db.dispose()


def test_ivz_demo_prints_the_report_and_only_reports_the_second_time(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    runner = CliRunner()
    args = ["demo", "--database-url", url, "--referrals", "6", "--weeks", "2"]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "exports")], env={"COLUMNS": "160"})
    assert first.exit_code == 0, first.output
    assert "AA" in first.output and "all teams" in first.output
    assert list((tmp_path / "exports").glob("tk-export-*.csv"))
    second = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert second.exit_code == 0, second.output
    assert "already in this database" in second.output and "all teams" in second.output


@pytest.mark.parametrize("pathway_url", ["sqlite"], indirect=True)
def test_the_full_cohort_has_the_published_shape(pathway_url: str) -> None:
    db, result = _run(pathway_url)
    try:
        report = result.report.as_json()
        assert report["referrals"] == 220
        assert abs(report["age_mean"] - 57.6) <= 3
        assert 35 <= report["female_percent"] <= 52
        assert 5 <= report["confirmed_percent"] <= 17
    finally:
        db.dispose()


def test_the_clinic_results_carry_the_program_codes() -> None:
    case = generate(1, 7, date(2026, 10, 5), date(2026, 10, 9))[0]
    start = datetime(2026, 10, 6, 8, tzinfo=UTC)
    visit = Visit(
        "a", "B0", "team-01", "HealthcareService/team-01", start, start + timedelta(hours=1)
    )
    bundle = convert(oru(case, visit, start + timedelta(hours=3)).raw).bundle
    systems = {
        c.get("system")
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        for c in e["resource"]["code"]["coding"]
    }
    assert f"{BASE}/CodeSystem/ivz-observation" in systems
    stages = [
        e["resource"]["valueCodeableConcept"]["coding"][0]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        and e["resource"]["code"]["coding"][0]["code"] == "mpss-stage"
    ]
    assert stages == [
        {"system": f"{BASE}/CodeSystem/ivz-mpss-stage", "code": case.findings.mpss}
        | {"display": f"Stadium {case.findings.mpss}"}
    ]

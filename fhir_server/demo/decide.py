"""The team's decision, as the ``$verdict`` Parameters a team's software would post.

The rationale and the recommended treatments follow the case's findings, so the stored
verdicts and care plans read like real ones (and a confirmed case is one with a deficit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir_server.demo.cohort import Case

OPS = "http://fhir.de/CodeSystem/bfarm/ops"
SNOMED = "http://snomed.info/sct"


def _ops(code: str, display: str, when: datetime) -> dict[str, Any]:
    coding = {"system": OPS, "version": str(when.year), "code": code, "display": display}
    return {"coding": [coding], "text": display}


def _snomed(code: str, display: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": text}


def _activities(case: Case, when: datetime) -> list[dict[str, Any]]:
    f = case.findings
    if case.confirmed:
        return [_snomed("91251008", "Physical therapy procedure", "Postoperative Physiotherapie")]
    out = [
        _ops("8-918", "Interdisziplinäre multimodale Schmerztherapie", when),
        _snomed("91251008", "Physical therapy procedure", "Physiotherapie, aktivierend"),
    ]
    if f.phq9 >= 10 or f.gad7 >= 10 or f.mpss == "III":
        out.append(_snomed("166001", "Behavioral therapy", "Verhaltenstherapie (Schmerz)"))
    return out


def _rationale(case: Case) -> str:
    f = case.findings
    if case.confirmed:
        return (
            f"Indikation zur Operation ({case.ops}) bestätigt: "
            f"{'progredientes neurologisches Defizit, ' if f.neuro_deficit else ''}"
            f"konservative Therapie ausgeschöpft, Befund korreliert mit der Bildgebung."
        )
    return (
        f"Operation ({case.ops}) derzeit nicht empfohlen: kein relevantes neurologisches "
        f"Defizit, Chronifizierungsstadium MPSS {f.mpss}, ODI {f.odi} %, NRS {f.nrs}/10; "
        "multimodale konservative Therapie zuerst."
    )


def verdict_parameters(case: Case, team_service: str, when: datetime) -> dict[str, Any]:
    """The ``$verdict`` input for ``case`` decided by the team at ``team_service``."""
    outcome = "surgery-confirmed" if case.confirmed else "surgery-not-recommended"
    parameters: list[dict[str, Any]] = [
        {"name": "outcome", "valueCode": outcome},
        {"name": "rationale", "valueString": _rationale(case)},
        {"name": "team", "valueReference": {"reference": team_service}},
    ]
    parameters += [{"name": "activity", "valueCodeableConcept": a} for a in _activities(case, when)]
    return {"resourceType": "Parameters", "parameter": parameters}

"""The profile examples, and broken copies of them."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fhir_server.fhir.outcomes import Issue
from fhir_server.profiles.registry import registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "profiles" / "examples"
BASE = "https://ivz-bridge.example/fhir"

#: profile id -> example file of that profile
EXAMPLE_OF = {
    "ivz-referral": "ServiceRequest-ivz-example-referral.json",
    "ivz-proposed-surgery": "ServiceRequest-ivz-example-proposed-surgery.json",
    "ivz-appointment": "Appointment-ivz-example-appointment.json",
    "ivz-pain-nrs": "Observation-ivz-example-pain-nrs.json",
    "ivz-odi": "Observation-ivz-example-odi.json",
    "ivz-depression-anxiety": "Observation-ivz-example-phq9.json",
    "ivz-chronification-stage": "Observation-ivz-example-mpss.json",
    "ivz-physical-exam": "Observation-ivz-example-lasegue.json",
    "ivz-verdict": "Observation-ivz-example-verdict.json",
    "ivz-treatment-plan": "CarePlan-ivz-example-treatment-plan.json",
}


def example(profile: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EXAMPLES / EXAMPLE_OF[profile]).read_text("utf-8"))
    return doc


def broken(profile: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """The profile's example after ``change`` (which edits it in place)."""
    doc = copy.deepcopy(example(profile))
    change(doc)
    return doc


def profile_issues(resource: dict[str, Any]) -> list[Issue]:
    """Issues against the profiles the resource claims."""
    return registry().validate(resource, resource["meta"]["profile"])


def coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}

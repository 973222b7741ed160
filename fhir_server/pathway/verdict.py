"""``$verdict`` and ``$amend-verdict``: the team's decision on a proposed spine surgery.

Each runs as one Unit: the state checks, the verdict Observation, the treatment CarePlan and
the referral's completion commit together or not at all (docs/pathway.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway.program import BASE
from fhir_server.pathway.view import (
    OBSERVATION_SYSTEM,
    VERDICT_SYSTEM,
    Case,
    Doc,
    consent_on_hold,
    load_case,
    load_referral,
    reference_key,
)
from fhir_server.profiles.registry import registry as profile_registry
from fhir_server.profiles.terminology import coded_in
from fhir_server.service.clock import instant
from fhir_server.service.resources import ResourceService, Unit, new_id
from fhir_server.service.validation import validate_resource
from fhir_server.storage.repository import StoredVersion

VERDICT_PROFILE = f"{BASE}/StructureDefinition/ivz-verdict"
PLAN_PROFILE = f"{BASE}/StructureDefinition/ivz-treatment-plan"
CONFIRMED = "surgery-confirmed"
#: The recommended treatments ``activity`` takes (profiles/source/terminology.yaml).
TREATMENT_VALUE_SET = f"{BASE}/ValueSet/ivz-treatment"


def outcomes() -> dict[str, str]:
    """The verdict codes and their displays: CodeSystem ivz-verdict of ``profiles/``."""
    return profile_registry().displays[VERDICT_SYSTEM]


_PARAMETERS = {"outcome", "rationale", "activity", "team"}


@dataclass(frozen=True, slots=True)
class VerdictRequest:
    """The operation's input parameters, checked."""

    outcome: str
    rationale: str
    activities: list[dict[str, Any]]
    team: tuple[str, str]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class VerdictResult:
    verdict: StoredVersion
    care_plan: StoredVersion
    referral: StoredVersion


def record_verdict(service: ResourceService, referral_id: str, params: Any) -> VerdictResult:
    """``$verdict``: refuse unless the case may be decided now, then decide it."""
    _check_envelope(params)
    request = parse_request(params, amend=False)  # a malformed request is 422 in any state
    with service.unit() as unit:
        case = _locked_case(unit, referral_id)
        _check_state(case)
        if case.verdicts:
            raise FhirError(
                409,
                "business-rule",
                f"A verdict ({case.verdicts[0].ref}) is already recorded for "
                f"{case.referral.ref}; correct it with $amend-verdict",
            )
        team = resolve_team(unit, request.team)
        verdict_id = new_id()
        verdict = _verdict(case, request, team, verdict_id, unit, "final")
        plan = _care_plan(case, request, f"Observation/{verdict_id}", unit, replaces=[])
        stored_verdict = unit.create(validate_resource(verdict, "Observation"), verdict_id)
        stored_plan = unit.create(validate_resource(plan, "CarePlan"))
        return VerdictResult(stored_verdict.stored, stored_plan.stored, _complete(unit, case))


def amend_verdict(service: ResourceService, referral_id: str, params: Any) -> VerdictResult:
    """``$amend-verdict``: a new version of the verdict (status amended) and a revised plan."""
    _check_envelope(params)
    request = parse_request(params, amend=True)
    with service.unit() as unit:
        case = _locked_case(unit, referral_id)
        _check_state(case)
        if not case.verdicts:
            raise FhirError(
                409,
                "business-rule",
                f"No verdict is recorded for {case.referral.ref}; record one with $verdict",
            )
        team = resolve_team(unit, request.team)
        current = case.verdicts[0]
        verdict = _verdict(case, request, team, current.stored.id, unit, "amended")
        replaced = []
        for old in case.care_plans:
            if old.res.get("status") in ("active", "draft", "on-hold"):
                revoked = {**old.res, "status": "revoked"}
                unit.update(validate_resource(revoked, "CarePlan"), old.stored.id)
                replaced.append(old.ref)
        plan = _care_plan(case, request, current.ref, unit, replaces=replaced)
        stored_verdict = unit.update(validate_resource(verdict, "Observation"), current.stored.id)
        stored_plan = unit.create(validate_resource(plan, "CarePlan"))
        return VerdictResult(stored_verdict.stored, stored_plan.stored, _complete(unit, case))


# --- checks -----------------------------------------------------------------------------------


def _check_envelope(params: Any) -> None:
    if not isinstance(params, dict) or params.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "The operation takes a Parameters resource")
    validate_resource(params, "Parameters")


def _locked_case(unit: Unit, referral_id: str) -> Case:
    """The case, with the referral row locked so that two verdicts never race."""
    unit.current("ServiceRequest", referral_id, lock=True)
    return load_case(unit, load_referral(unit, referral_id))


def _check_state(case: Case) -> None:
    """409 unless the team has seen the patient and may use the data."""
    status = case.referral.res.get("status")
    if status in ("revoked", "entered-in-error"):
        raise FhirError(
            409, "business-rule", f"{case.referral.ref} is {status}; it cannot be decided"
        )
    hold = consent_on_hold(case)
    if hold is not None:
        raise FhirError(409, "business-rule", f"Consent on hold: {hold}; no verdict is possible")
    if not case.fulfilled:
        raise FhirError(
            409,
            "business-rule",
            f"No fulfilled Appointment is based on {case.referral.ref}: "
            "the team must have seen the patient before deciding",
        )
    if case.surgery is None:
        raise FhirError(
            409,
            "business-rule",
            f"{case.referral.ref} names no proposed surgery (supportingInfo ServiceRequest "
            "with intent proposal); the verdict has nothing to judge",
        )
    if not case.conditions:
        raise FhirError(
            409,
            "business-rule",
            f"{case.referral.ref} names no Condition (reasonReference); "
            "the treatment plan must address one",
        )


def _invalid(message: str, where: str, code: str = "invalid") -> FhirError:
    return FhirError(422, code, message, (where,))


def parse_request(params: dict[str, Any], amend: bool) -> VerdictRequest:
    """Check the Parameters by name; every fault is a 422 naming the parameter."""
    allowed = _PARAMETERS | ({"reason"} if amend else set())
    found: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, param in enumerate(params.get("parameter") or []):
        name = param.get("name")
        if name not in allowed:
            raise _invalid(
                f"Unknown parameter '{name}'; expected {', '.join(sorted(allowed))}",
                f"Parameters.parameter[{index}].name",
            )
        found.setdefault(name, []).append((index, param))
    outcome = _single(found, "outcome", "valueCode")
    if outcome not in outcomes():
        raise _invalid(
            f"Parameter 'outcome' must be one of {', '.join(outcomes())}, not '{outcome}'",
            f"Parameters.parameter[{found['outcome'][0][0]}].valueCode",
        )
    rationale = _single(found, "rationale", "valueString").strip()
    if not rationale:
        raise _invalid(
            "Parameter 'rationale' must not be blank",
            f"Parameters.parameter[{found['rationale'][0][0]}].valueString",
            "required",
        )
    reason = _single(found, "reason", "valueString").strip() if amend else None
    if amend and not reason:
        raise _invalid("Parameter 'reason' must not be blank", "Parameters.parameter", "required")
    team_ref = _single(found, "team", "valueReference")
    team = reference_key(team_ref)
    where = f"Parameters.parameter[{found['team'][0][0]}].valueReference"
    if team is None or team[0] not in ("HealthcareService", "Organization"):
        raise _invalid(
            "Parameter 'team' must reference a HealthcareService or Organization, "
            f"not '{(team_ref or {}).get('reference')}'",
            where,
        )
    activities = [_activity(index, p) for index, p in found.get("activity", [])]
    return VerdictRequest(outcome, rationale, activities, team, reason)


def _single(found: dict[str, list[tuple[int, dict[str, Any]]]], name: str, key: str) -> Any:
    items = found.get(name, [])
    if not items:
        raise _invalid(f"Parameter '{name}' ({key}) is required", "Parameters", "required")
    if len(items) > 1:
        raise _invalid(
            f"Parameter '{name}' is given {len(items)} times; it takes one value",
            f"Parameters.parameter[{items[1][0]}]",
        )
    index, param = items[0]
    value = param.get(key)
    if value is None:
        raise _invalid(
            f"Parameter '{name}' must carry {key}", f"Parameters.parameter[{index}]", "required"
        )
    return value


def _activity(index: int, param: dict[str, Any]) -> dict[str, Any]:
    """A recommended treatment: a CodeableConcept with a coding from ValueSet ivz-treatment."""
    concept = param.get("valueCodeableConcept")
    where = f"Parameters.parameter[{index}].valueCodeableConcept"
    if not isinstance(concept, dict):
        raise _invalid("Parameter 'activity' must carry valueCodeableConcept", where, "required")
    treatments = profile_registry().value_sets[TREATMENT_VALUE_SET]
    if not coded_in(concept, treatments):
        listed = ", ".join(
            f"{inc.system} {' '.join(sorted(inc.codes)) or '|'.join(inc.roots)}"
            for inc in treatments.includes
        )
        raise _invalid(
            f"Parameter 'activity' needs a coding from ValueSet ivz-treatment ({listed})", where
        )
    return concept


def resolve_team(unit: Unit, team: tuple[str, str]) -> Doc:
    """The deciding team's Organization (a HealthcareService's providedBy)."""
    kind, team_id = team
    try:
        found = Doc.of(unit.read(kind, team_id))
    except FhirError as exc:
        raise _invalid(
            f"Parameter 'team': {kind}/{team_id} does not resolve ({exc.diagnostics})",
            "Parameters.parameter.valueReference",
        ) from exc
    if kind == "Organization":
        return found
    org = reference_key(found.res.get("providedBy"))
    if org is None or org[0] != "Organization":
        raise _invalid(
            f"Parameter 'team': {kind}/{team_id} has no providedBy Organization",
            "Parameters.parameter.valueReference",
        )
    return resolve_team(unit, org)


# --- the resources written --------------------------------------------------------------------


def _verdict(
    case: Case, request: VerdictRequest, team: Doc, verdict_id: str, unit: Unit, status: str
) -> dict[str, Any]:
    assert case.surgery is not None
    when = instant(unit.clock())
    notes = [{"text": request.rationale}]
    if request.reason:
        notes.append({"text": f"Amended: {request.reason}"})
    performer: dict[str, Any] = {"reference": team.ref}
    if isinstance(team.res.get("name"), str):
        performer["display"] = team.res["name"]
    verdict: dict[str, Any] = {
        "resourceType": "Observation",
        "id": verdict_id,
        "meta": {"profile": [VERDICT_PROFILE]},
        "basedOn": [{"reference": case.referral.ref}],
        "status": status,
        "code": {
            "coding": [
                {
                    "system": OBSERVATION_SYSTEM,
                    "code": "verdict",
                    "display": "Second-opinion verdict",
                }
            ]
        },
        "subject": case.referral.res["subject"],
        "focus": [{"reference": case.surgery.ref}],
        "effectiveDateTime": when,
        "issued": when,
        "performer": [performer],
        "valueCodeableConcept": {
            "coding": [
                {
                    "system": VERDICT_SYSTEM,
                    "code": request.outcome,
                    "display": outcomes()[request.outcome],
                }
            ]
        },
        "note": notes,
    }
    derived = [{"reference": a.ref} for a in case.assessments]
    if derived:
        verdict["derivedFrom"] = derived
    return verdict


def _care_plan(
    case: Case, request: VerdictRequest, verdict_ref: str, unit: Unit, replaces: list[str]
) -> dict[str, Any]:
    assert case.surgery is not None
    activities: list[dict[str, Any]] = [
        {"detail": {"code": concept, "status": "not-started"}} for concept in request.activities
    ]
    if request.outcome == CONFIRMED:
        activities.insert(0, {"reference": {"reference": case.surgery.ref}})
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "meta": {"profile": [PLAN_PROFILE]},
        "basedOn": [{"reference": case.referral.ref}],
        "status": "active",
        "intent": "plan",
        "title": f"Treatment plan after the second opinion: {outcomes()[request.outcome]}",
        "subject": case.referral.res["subject"],
        "created": instant(unit.clock()),
        "addresses": [{"reference": c.ref} for c in case.conditions],
        "supportingInfo": [{"reference": verdict_ref}],
    }
    if replaces:
        plan["replaces"] = [{"reference": ref} for ref in replaces]
    if activities:
        plan["activity"] = activities
    return plan


def _complete(unit: Unit, case: Case) -> StoredVersion:
    """The referral's status becomes completed (no new version when it already is)."""
    completed = {**case.referral.res, "status": "completed"}
    return unit.update(
        validate_resource(completed, "ServiceRequest"), case.referral.stored.id
    ).stored

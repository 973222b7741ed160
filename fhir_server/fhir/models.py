"""The one place that imports fhir.resources (its R4B models, the closest it ships to R4).

R4-only resource types that R4B lacks (MedicinalProduct*, EffectEvidenceSynthesis,
RiskEvidenceSynthesis, SubstanceSpecification) are checked by the R4 JSON schema alone; see
docs/validation.md for the other differences met.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from fhir_server.fhir.outcomes import Issue

#: Types whose R4B model differs in structure from R4: the R4 schema alone judges them.
_R4B_DIFFERS = frozenset({"Evidence", "EvidenceVariable"})

#: fhir.resources errors the R4 schema already reports (or that R4B gets wrong, such as
#: ``_valueString`` inside Extension): only cardinality and value rules are taken from it.
_LEFT_TO_SCHEMA = frozenset({"extra_forbidden", "string_pattern_mismatch"})


@cache
def _model(resource_type: str) -> Any | None:
    if resource_type in _R4B_DIFFERS:
        return None
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None


def _expression(base: str, loc: tuple[Any, ...]) -> str:
    out = base
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith("function-"):
            out += f".{part}"
    return out


def validate_model(resource: dict[str, Any]) -> list[Issue]:
    """Cardinality, choice-type and invariant-like checks of fhir.resources; never raises."""
    resource_type = str(resource.get("resourceType"))
    model = _model(resource_type)
    if model is None:
        return []
    try:
        model.model_validate(resource)
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            return [Issue("structure", f"{resource_type}: {exc}", expression=(resource_type,))]
        issues = []
        for err in errors():
            if err.get("type") in _LEFT_TO_SCHEMA:
                continue
            where = _expression(resource_type, tuple(err.get("loc", ())))
            code = "required" if err.get("type") == "missing" else "invariant"
            issues.append(Issue(code, f"{err.get('msg')} ({where})", expression=(where,)))
        return issues
    return []

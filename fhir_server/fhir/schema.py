"""Structural validation against the official R4 JSON schema (``fhir.schema.json``, 4.0.1).

The schema is R4 exactly (fhir.resources ships R4B), rejects unknown elements, checks primitive
formats and the ``enum`` of every required-bound ``code`` element, in microseconds per resource.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from fhir_server.fhir.outcomes import Issue

#: Paths (as keys) under which whole resources nest, validated with their own type's schema.
#: Resources nest inside resources only here; each is validated with its own type's schema.
#: (The published schema's ``oneOf`` over all 146 types instead re-validates every nesting
#: level once per type: 300 nested ``contained`` took the server down.)
MAX_NESTING = 8


@dataclass(frozen=True)
class _Schema:
    definitions: dict[str, Any]
    resource_types: frozenset[str]


#: FHIR's string regex means ASCII ``\\S`` (as in Java); a Unicode regex engine would reject
#: no-break spaces, common in real German data. Control characters stay forbidden.
_STRING_PATTERN = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F]+$"


def _patch(definitions: dict[str, Any]) -> None:
    """Fix known gaps of the published R4 schema (see docs/validation.md)."""
    definitions["ResourceList"] = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string"}},
    }
    unicode_pattern = definitions["string"]["pattern"]
    for name in ("string", "markdown"):
        definitions[name]["pattern"] = _STRING_PATTERN
    canonical = "#/definitions/canonical"
    for definition in definitions.values():
        props = definition.get("properties", {})
        for prop, spec in list(props.items()):
            if spec.get("pattern") == unicode_pattern:
                spec["pattern"] = _STRING_PATTERN
            if spec.get("$ref") == canonical and f"_{prop}" not in props:
                props[f"_{prop}"] = {"$ref": "#/definitions/Element"}
            elif spec.get("items", {}).get("$ref") == canonical and f"_{prop}" not in props:
                props[f"_{prop}"] = {"type": "array", "items": {"$ref": "#/definitions/Element"}}


@cache
def _schema() -> _Schema:
    raw = resources.files("fhir_server.data").joinpath("fhir.schema.json.gz").read_bytes()
    doc = json.loads(gzip.decompress(raw))
    _patch(doc["definitions"])
    return _Schema(doc["definitions"], frozenset(doc["discriminator"]["mapping"]))


def resource_types() -> frozenset[str]:
    """All FHIR R4 (4.0.1) resource types."""
    return _schema().resource_types


_lock = threading.Lock()
_validators: dict[str, Any] = {}


def _validator(resource_type: str) -> Any:
    found = _validators.get(resource_type)
    if found is None:
        with _lock:
            found = _validators.get(resource_type)
            if found is None:
                schema = {"$ref": f"#/definitions/{resource_type}", **_defs_doc()}
                found = jsonschema_rs.Draft6Validator(schema)
                _validators[resource_type] = found
    return found


@cache
def _defs_doc() -> dict[str, Any]:
    return {"definitions": _schema().definitions}


def _expression(base: str, path: list[str | int]) -> str:
    out = base
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _issues_for(error: Any, base: str) -> list[Issue]:
    kind = type(error.kind).__name__
    where = _expression(base, list(error.instance_path))
    if kind == "AdditionalProperties":
        names = list(getattr(error.kind, "unexpected", None) or [])
        return [
            Issue("structure", f"Unknown element '{n}' at {where}", expression=(f"{where}.{n}",))
            for n in names
        ] or [Issue("structure", f"{error.message} ({where})", expression=(where,))]
    if kind == "Required":
        name = getattr(error.kind, "property", "")
        return [
            Issue(
                "required",
                f"Missing required element '{name}' at {where}",
                expression=(f"{where}.{name}",),
            )
        ]
    code = _CODES.get(kind, "structure")
    return [Issue(code, f"{error.message} ({where})", expression=(where,))]


_CODES = {"Enum": "code-invalid", "Required": "required", "Pattern": "value", "Type": "value"}


def validate_structure(
    resource: dict[str, Any], base: str | None = None, depth: int = 0
) -> list[Issue]:
    """Every schema violation of ``resource``, nested resources checked with their own type."""
    resource_type = resource.get("resourceType")
    base = base or str(resource_type)
    if not isinstance(resource_type, str) or resource_type not in resource_types():
        return [
            Issue(
                "not-supported",
                f"Unknown resource type {resource_type!r} at {base}",
                expression=(base,),
            )
        ]
    if depth > MAX_NESTING:
        return [Issue("too-costly", f"Resources nested too deeply at {base}", expression=(base,))]
    issues: list[Issue] = []
    for error in _validator(resource_type).iter_errors(resource):
        issues.extend(_issues_for(error, base))
    for where, nested, contained in _nested(resource, base):
        if contained and isinstance(nested, dict) and "contained" in nested:
            issues.append(
                Issue(
                    "invariant",
                    f"A contained resource must not contain resources (dom-2) at {where}",
                    expression=(f"{where}.contained",),
                )
            )
            continue
        if isinstance(nested, dict):
            issues.extend(validate_structure(nested, where, depth + 1))
    return issues


def _nested(resource: dict[str, Any], base: str) -> list[tuple[str, Any, bool]]:
    """(expression, nested resource, is-contained) for every resource inside ``resource``."""
    found: list[tuple[str, Any, bool]] = []
    contained = resource.get("contained")
    if isinstance(contained, list):
        found += [(f"{base}.contained[{i}]", r, True) for i, r in enumerate(contained)]
    kind = resource.get("resourceType")
    if kind == "Bundle" and isinstance(resource.get("entry"), list):
        for i, entry in enumerate(resource["entry"]):
            if not isinstance(entry, dict):
                continue
            if "resource" in entry:
                found.append((f"{base}.entry[{i}].resource", entry["resource"], False))
            response = entry.get("response")
            if isinstance(response, dict) and "outcome" in response:
                found.append((f"{base}.entry[{i}].response.outcome", response["outcome"], False))
    if kind == "Parameters":
        found += _parameter_resources(resource.get("parameter"), f"{base}.parameter")
    return found


def _parameter_resources(parameters: Any, base: str) -> list[tuple[str, Any, bool]]:
    found: list[tuple[str, Any, bool]] = []
    if not isinstance(parameters, list):
        return found
    for i, parameter in enumerate(parameters):
        if not isinstance(parameter, dict):
            continue
        if "resource" in parameter:
            found.append((f"{base}[{i}].resource", parameter["resource"], False))
        found += _parameter_resources(parameter.get("part"), f"{base}[{i}].part")
    return found

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
_NESTED_RESOURCE_KEYS = frozenset({"contained", "resource", "outcome", "return"})


@dataclass(frozen=True)
class _Schema:
    definitions: dict[str, Any]
    resource_types: frozenset[str]


#: FHIR's string regex means ASCII ``\\S`` (as in Java); a Unicode regex engine would reject
#: no-break spaces, common in real German data. Control characters stay forbidden.
_STRING_PATTERN = "^[^\\x00-\\x08\\x0B\\x0C\\x0E-\\x1F]+$"


def _patch(definitions: dict[str, Any]) -> None:
    """Fix two known gaps of the published R4 schema (see docs/validation.md)."""
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


def validate_structure(resource: dict[str, Any], base: str | None = None) -> list[Issue]:
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
    issues: list[Issue] = []
    for error in _validator(resource_type).iter_errors(resource):
        path = list(error.instance_path)
        if type(error.kind).__name__ == "OneOfNotValid" and path and _is_nested(path):
            nested = _resolve(resource, path)
            if isinstance(nested, dict):
                issues.extend(validate_structure(nested, _expression(base, path)))
                continue
        issues.extend(_issues_for(error, base))
    return issues


def _is_nested(path: list[str | int]) -> bool:
    names = [p for p in path if isinstance(p, str)]
    return bool(names) and names[-1] in _NESTED_RESOURCE_KEYS


def _resolve(value: Any, path: list[str | int]) -> Any:
    for part in path:
        value = value[part]
    return value

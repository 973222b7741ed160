"""Control characters in primitive values: no FHIR type admits them (the string type's
regex excludes them, and PostgreSQL refuses NUL in text), yet the R4 schema lets ``uri``,
``code`` and ``id``-like values through with them. Refused here, by path, as a 400."""

from __future__ import annotations

import re
from typing import Any

from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import Issue

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
#: How the serialiser writes them; a resource without any of these holds none (cheap test).
_ESCAPES = (b"\\u00", b"\\b", b"\\f")


def control_character_issues(resource: dict[str, Any]) -> list[Issue]:
    """One issue per value holding a control character (tab, CR and LF are allowed)."""
    text = jsonio.dumps(resource)
    if not any(escape in text for escape in _ESCAPES):
        return []
    found: list[str] = []
    _walk(resource, str(resource.get("resourceType", "Resource")), found)
    return [
        Issue(
            "value",
            f"{path}: a control character is not allowed in a FHIR value",
            expression=(path,),
        )
        for path in found[:20]
    ]


def _walk(value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, str):
        if _CONTROL.search(value):
            found.append(path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}.{key}", found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", found)

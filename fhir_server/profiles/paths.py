"""Walking an ElementDefinition path through a JSON resource, keeping FHIRPath locations.

``nodes(root, "Observation.basedOn")`` yields ``(value, "Observation.basedOn[0]")`` pairs;
a choice element (``value[x]``) yields each present variant as
``Observation.value.ofType(Quantity)``, the FHIRPath a client can evaluate.
"""

from __future__ import annotations

from typing import Any

Node = tuple[Any, str]

PRIMITIVES = frozenset(
    {
        "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
        "instant", "integer", "markdown", "oid", "positiveInt", "string", "time",
        "unsignedInt", "uri", "url", "uuid",
    }
)  # fmt: skip


def choice_type(prefix: str, key: str) -> str | None:
    """The type of a choice key (``valueQuantity`` → ``Quantity``), None for other keys."""
    suffix = key[len(prefix) :]
    if not key.startswith(prefix) or not suffix[:1].isupper():
        return None
    lowered = suffix[0].lower() + suffix[1:]
    return lowered if lowered in PRIMITIVES else suffix


def fhirpath_of(path: str) -> str:
    """An ElementDefinition path as FHIRPath (choice suffix removed)."""
    return path.replace("[x]", "")


def children(value: Any, name: str, where: str) -> list[Node]:
    """The values of element ``name`` inside ``value`` (a list's items one by one)."""
    if not isinstance(value, dict):
        return []
    if name.endswith("[x]"):
        prefix = name[:-3]
        out: list[Node] = []
        for key, item in value.items():
            type_ = choice_type(prefix, key)
            if type_ is not None:
                out += _expand(item, f"{where}.{prefix}.ofType({type_})")
        return out
    return _expand(value.get(name), f"{where}.{name}")


def nodes(root: Any, segments: tuple[str, ...], where: str) -> list[Node]:
    """All values at ``segments`` (path below the root) starting from ``(root, where)``."""
    current: list[Node] = [(root, where)]
    for name in segments:
        current = [child for value, at in current for child in children(value, name, at)]
    return current


def _expand(value: Any, where: str) -> list[Node]:
    if value is None:
        return []
    if isinstance(value, list):
        return [(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return [(value, where)]


def count(value: Any, name: str) -> int:
    """How many values element ``name`` has inside ``value``."""
    return len(children(value, name, ""))


def contains(instance: Any, pattern: Any) -> bool:
    """FHIR pattern[x] matching: ``instance`` has at least what ``pattern`` has."""
    if isinstance(pattern, dict):
        return isinstance(instance, dict) and all(
            contains(instance.get(k), v) for k, v in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(instance, list) and all(
            any(contains(item, p) for item in instance) for p in pattern
        )
    if isinstance(pattern, bool) or isinstance(instance, bool):
        return instance is pattern
    return bool(instance == pattern)

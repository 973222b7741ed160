"""Required terminology bindings, enforced on every write.

The JSON schema only checks the ``enum`` of plain ``code`` elements of a resource. FHIR also
requires that every element with a *required* binding (``code``, ``Coding``,
``CodeableConcept``, ...) takes its code from the bound value set, wherever it sits: inside
datatypes (``Identifier.use``, ``Quantity.comparator``, ...), backbone elements, choice types,
extensions (also those on primitives, under ``_name``), contained resources and
``Bundle.entry.resource``.

The rules come from ``fhir_server/data/required_bindings.json`` (built by
``tools/build_bindings.py`` from the R4 core package): the expanded value sets and a walk plan
listing, per type or backbone element, only the JSON keys from which a binding can be reached.
Both are compiled once into lookup tables, so a check visits only those keys.

Not checked: value sets that cannot be expanded from the spec alone (MIME types, UCUM units,
ISO 4217 currencies, a LOINC answer list; see ``notEnumerable`` in the data file).
Values of the wrong JSON type are skipped: the schema validator reports them. Violations come
in walk order, which is not document order. Nearly every resource is valid, so a quicker pass
that records nothing decides that first; the walk only runs to report violations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["BindingViolation", "check_required_bindings", "enforced_valuesets"]

_DATA_FILE = "data/required_bindings.json"

# How a bound element holds its code, by the element's type.
_CODE = 0  # code / string / uri: the value itself, its system implied by the value set
_CODING = 1  # Coding, Quantity and its specialisations: ``system`` + ``code``
_CONCEPT = 2  # CodeableConcept: one of its ``coding`` must be a member
_QUANTITIES = ("Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity")
_KINDS = {
    "code": _CODE,
    "string": _CODE,
    "uri": _CODE,
    "Coding": _CODING,
    "CodeableConcept": _CONCEPT,
    **dict.fromkeys(_QUANTITIES, _CODING),
}


@dataclass(frozen=True, slots=True)
class BindingViolation:
    """A code outside the value set of a required binding.

    ``code`` is None for a CodeableConcept without any coding, or a Coding without a code.
    """

    expression: str
    code: str | None
    system: str | None
    valueset: str
    message: str


@dataclass(frozen=True, slots=True)
class _ValueSet:
    url: str
    codes: frozenset[str]
    by_system: dict[str, frozenset[str]]

    def has_coding(self, system: object, code: object) -> bool:
        found = self.by_system.get(system) if isinstance(system, str) else None
        return found is not None and code in found


@dataclass(frozen=True, slots=True)
class _Step:
    """What to do with the value of one JSON key: check it, descend into it, or both.

    ``child_keys`` (the keys of ``child``) lets the check skip, without a Python loop, the
    many elements that hold none of them (most Codings, References, Periods...). ``codes`` is
    the value set's codes for a plain code, so a valid one is accepted inline.
    """

    kind: int
    valueset: _ValueSet | None
    child: dict[str, _Step] | None
    child_keys: frozenset[str] | None
    nested_resource: bool
    repeats: bool
    codes: frozenset[str] | None


_Plan = dict[str, _Step]
#: A location, built cheaply while walking and only rendered as text for a violation.
_Path = str | tuple["_Path", str, int | None]
#: A JSON object still to walk, with the plan for its type and its location.
_Pending = tuple[dict[str, Any], _Plan, _Path]


@dataclass(frozen=True, slots=True)
class _Tables:
    resources: dict[str, _Plan]
    valuesets: dict[str, _ValueSet]


@cache
def _tables() -> _Tables:
    """Load and compile the data file once, on first use."""
    raw = resources.files("fhir_server").joinpath(_DATA_FILE).read_text(encoding="utf-8")
    return _compile(json.loads(raw))


def _compile(data: dict[str, Any]) -> _Tables:
    valuesets = {url: _valueset(url, systems) for url, systems in data["valueSets"].items()}
    nodes: dict[str, dict[str, list[str]]] = data["nodes"]
    bindings: dict[str, str] = data["bindings"]
    plans: dict[str, _Plan] = {node: {} for node in nodes}
    keys_of = {
        node: frozenset(e.rstrip("*") for keys in children.values() for e in keys)
        for node, children in nodes.items()
    }
    for node, children in nodes.items():
        for target, keys in children.items():
            kind = _KINDS.get(target)
            for entry in keys:
                key = entry.rstrip("*")
                bound = bindings.get(f"{node}.{key}") if kind is not None else None
                valueset = valuesets.get(bound) if bound else None
                plans[node][key] = _Step(
                    kind=_CODE if kind is None else kind,
                    valueset=valueset,
                    child=plans.get(target),
                    child_keys=_child_keys(keys_of, target),
                    nested_resource=target == "Resource",
                    repeats=entry.endswith("*"),
                    codes=valueset.codes if valueset is not None and kind == _CODE else None,
                )
    resource_plans = {name: plans[name] for name in data["resourceTypes"] if name in plans}
    return _Tables(resource_plans, valuesets)


def _child_keys(keys_of: dict[str, frozenset[str]], target: str) -> frozenset[str] | None:
    """Keys worth descending for (None: any, a nested resource's depend on its type)."""
    if target in keys_of:
        return keys_of[target]
    return None if target == "Resource" else frozenset()


def _valueset(url: str, systems: dict[str, list[str]]) -> _ValueSet:
    by_system = {system: frozenset(codes) for system, codes in systems.items()}
    return _ValueSet(url, frozenset().union(*by_system.values()), by_system)


def enforced_valuesets() -> frozenset[str]:
    """URLs of the required value sets this module checks (for CapabilityStatement/docs)."""
    return frozenset(_tables().valuesets)


def check_required_bindings(resource: dict[str, Any]) -> list[BindingViolation]:
    """Return every code of ``resource`` that breaks a required binding (empty when valid).

    Walks nested resources too (``contained``, ``Bundle.entry.resource``, ...). Never raises on
    malformed input: values of an unexpected JSON type are ignored.
    """
    root = resource.get("resourceType") if isinstance(resource, dict) else None
    plan = _tables().resources.get(root) if isinstance(root, str) else None
    if plan is None or not isinstance(root, str):
        return []
    try:
        if _valid(resource, plan):
            return []
    except RecursionError:
        pass  # nested deeper than the interpreter allows: the walk below has no limit
    return _walk(resource, plan, root)


def _valid(node: dict[str, Any], plan: _Plan) -> bool:
    """Whether a node holds no violation: the walk of :func:`_walk` without its bookkeeping.

    Nearly every resource is valid, so this runs first: it visits the same values, but
    recursively in any order and without building locations; only when it finds a
    violation does the walk run, to report all of them in its order.
    """
    for key, value in node.items():
        step = plan.get(key)
        if step is None:
            continue
        if type(value) is list:
            if step.repeats:  # else an array where a single value belongs: skipped
                for item in value:
                    if not _item_valid(item, step):
                        return False
        elif not step.repeats and not _item_valid(value, step):
            return False
    return True


def _item_valid(item: Any, step: _Step) -> bool:
    """One value of an element: its code, then what it holds (see :func:`_valid`)."""
    valueset = step.valueset
    if valueset is not None:
        codes = step.codes  # a valid plain code is the usual case: no call for it
        valid = codes is not None and type(item) is str and item in codes
        if not valid and not _conforms(item, step.kind, valueset):
            return False
    if type(item) is dict:
        keys = step.child_keys
        if keys is None or not keys.isdisjoint(item):
            plan = step.child if step.child is not None else _nested_plan(step, item)
            return plan is None or _valid(item, plan)
    return True


def _conforms(value: Any, kind: int, valueset: _ValueSet) -> bool:
    """Whether :func:`_check` would report nothing, without building its violations."""
    if kind == _CODE:
        return not isinstance(value, str) or value in valueset.codes
    if not isinstance(value, dict):
        return True
    if kind == _CODING:
        return _coding_conforms(value, valueset)
    codings = value.get("coding", [])
    if not isinstance(codings, list):
        return True
    for coding in codings:  # as _check_concept: the first usable or malformed coding decides
        if not isinstance(coding, dict) or _coding_conforms(coding, valueset):
            return True
    return False


def _coding_conforms(coding: dict[str, Any], valueset: _ValueSet) -> bool:
    system, code = coding.get("system"), coding.get("code")
    return not _well_typed(system, code) or valueset.has_coding(system, code)


def _walk(resource: dict[str, Any], plan: _Plan, root: str) -> list[BindingViolation]:
    """Every violation, in walk order (depth first, last child first)."""
    out: list[BindingViolation] = []
    stack: list[_Pending] = [(resource, plan, root)]
    while stack:
        node, plan, path = stack.pop()
        for key, value in node.items():
            step = plan.get(key)
            if step is None or (type(value) is list) is not step.repeats:
                continue  # not bound, or an array where a single value belongs (or vice versa)
            if step.repeats:
                for index, item in enumerate(value):
                    _visit(item, step, (path, key, index), out, stack)
            else:
                _visit(value, step, (path, key, None), out, stack)
    return out


def _visit(
    value: Any, step: _Step, path: _Path, out: list[BindingViolation], stack: list[_Pending]
) -> None:
    """Check one element value, and queue it for walking if its type can hold bindings."""
    if step.valueset is not None:
        _check(value, step.kind, step.valueset, path, out)
    if type(value) is dict:
        plan = step.child if step.child is not None else _nested_plan(step, value)
        if plan is not None:
            stack.append((value, plan, path))


def _nested_plan(step: _Step, value: dict[str, Any]) -> _Plan | None:
    """Plan for a nested resource (``contained``, ``entry.resource``), by its resourceType."""
    if not step.nested_resource:
        return None
    resource_type = value.get("resourceType")
    return _tables().resources.get(resource_type) if isinstance(resource_type, str) else None


def _render(path: _Path) -> str:
    """``(("Patient", "contact", 0), "gender", None)`` -> ``Patient.contact[0].gender``."""
    parts: list[str] = []
    while not isinstance(path, str):
        path, key, index = path
        parts.append(f".{key}" if index is None else f".{key}[{index}]")
    return path + "".join(reversed(parts))


def _check(
    value: Any, kind: int, valueset: _ValueSet, path: _Path, out: list[BindingViolation]
) -> None:
    if kind == _CODE:
        if isinstance(value, str) and value not in valueset.codes:
            out.append(_violation(path, value, None, valueset))
    elif isinstance(value, dict):
        if kind == _CODING:
            _check_coding(value, valueset, path, out)
        else:
            _check_concept(value, valueset, path, out)


def _check_coding(
    coding: dict[str, Any], valueset: _ValueSet, path: _Path, out: list[BindingViolation]
) -> None:
    system, code = coding.get("system"), coding.get("code")
    if _well_typed(system, code) and not valueset.has_coding(system, code):
        out.append(_violation(path, code, system, valueset, coded=True))


def _check_concept(
    concept: dict[str, Any], valueset: _ValueSet, path: _Path, out: list[BindingViolation]
) -> None:
    """Required binding on a CodeableConcept: one of its codings SHALL be from the value set.

    FHIR R4 (terminologies.html#required, CodeableConcept rules): at least one Coding SHALL be
    present and one of them SHALL come from the value set; ``text`` is recommended but is not
    an acceptable substitute for the code. So a text-only concept is a violation too.
    """
    codings = concept.get("coding", [])
    if not isinstance(codings, list):
        return
    wrong: list[BindingViolation] = []
    for index, coding in enumerate(codings):
        if not isinstance(coding, dict):
            return
        system, code = coding.get("system"), coding.get("code")
        if not _well_typed(system, code):
            return
        if valueset.has_coding(system, code):
            return
        where = (path, "coding", index)
        wrong.append(_violation(where, code, system, valueset, coded=True))
    out.extend(wrong or [_violation(path, None, None, valueset)])


def _well_typed(system: object, code: object) -> bool:
    return isinstance(system, str | None) and isinstance(code, str | None)


def _violation(
    path: _Path,
    code: str | None,
    system: str | None,
    valueset: _ValueSet,
    *,
    coded: bool = False,
) -> BindingViolation:
    """Build the violation; ``coded`` marks a Coding, whose code means nothing without system."""
    where = _render(path)
    if code is None:
        what = "No code is given, but a code is required from the value set"
    elif coded and system is None:
        what = f"Code {code!r} has no system, so it is not from the required value set"
    elif coded:
        what = f"Code {code!r} of system {system} is not in the required value set"
    else:
        what = f"Code {code!r} is not in the required value set"
    return BindingViolation(where, code, system, valueset.url, f"{what} {valueset.url} ({where})")

"""A profile's snapshot compiled into small rule objects, each checking one constraint.

Only what the profile itself constrains is compiled: the snapshot elements named in its
differential, and of their invariants those whose ``source`` is the profile (the base
resource's own rules are enforced by ``service/validation.py`` already). Rule kinds:
cardinality, allowed choice types, ``fixed[x]`` (equal) and ``pattern[x]`` (contained),
slices (pattern or extension-url discriminators, with their cardinality), required bindings to
program ValueSets, FHIRPath invariants (fhirpathpy, R4 model) and reference target types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fhir_server.fhir.outcomes import Issue
from fhir_server.profiles.fhirpath import compile_invariant
from fhir_server.profiles.paths import (
    children,
    choice_type,
    contains,
    count,
    fhirpath_of,
    nodes,
)
from fhir_server.profiles.terminology import ValueSetIndex, coded_in

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
_LITERAL = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/[A-Za-z0-9\-.]{1,64}(?:/_history/[^/]+)?$")


@dataclass(frozen=True)
class Context:
    """What rules need besides the node: the whole resource and the other profiles."""

    resource: dict[str, Any]
    profile: Callable[[str], CompiledProfile | None]


class Rule(Protocol):
    def check(self, root: Any, where: str, ctx: Context) -> list[Issue]: ...


def _at(where: str, path: str) -> str:
    """``path`` (``Type.a.b``) as FHIRPath below ``where`` (the root's location)."""
    _, _, rest = fhirpath_of(path).partition(".")
    return f"{where}.{rest}" if rest else where


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)[:200]


@dataclass(frozen=True)
class Cardinality:
    path: str
    parent: tuple[str, ...]
    name: str
    min: int
    max: int | None

    def check(self, root: Any, where: str, ctx: Context) -> list[Issue]:
        issues = []
        for value, at in nodes(root, self.parent, where):
            n = count(value, self.name)
            loc = f"{at}.{fhirpath_of(self.name)}"
            if n < self.min:
                message = f"{self.path}: at least {self.min} required, found {n}"
                issues.append(Issue("required", message, expression=(loc,)))
            elif self.max is not None and n > self.max:
                message = f"{self.path}: at most {self.max} allowed, found {n}"
                issues.append(Issue("structure", message, expression=(loc,)))
        return issues


@dataclass(frozen=True)
class ChoiceTypes:
    path: str
    parent: tuple[str, ...]
    prefix: str
    allowed: frozenset[str]

    def check(self, root: Any, where: str, ctx: Context) -> list[Issue]:
        issues = []
        for value, at in nodes(root, self.parent, where):
            if not isinstance(value, dict):
                continue
            for key in value:
                type_ = choice_type(self.prefix, key)
                if type_ is not None and type_ not in self.allowed:
                    message = (
                        f"{self.path}: type {type_} is not allowed here "
                        f"(allowed: {', '.join(sorted(self.allowed))})"
                    )
                    loc = f"{at}.{self.prefix}.ofType({type_})"
                    issues.append(Issue("structure", message, expression=(loc,)))
        return issues


@dataclass(frozen=True)
class FixedValue:
    path: str
    segments: tuple[str, ...]
    value: Any
    exact: bool  # fixed[x] (equal) or pattern[x] (contained)

    def check(self, root: Any, where: str, ctx: Context) -> list[Issue]:
        issues = []
        for value, at in nodes(root, self.segments, where):
            ok = _equal(value, self.value) if self.exact else contains(value, self.value)
            if not ok:
                kind = "be" if self.exact else "contain"
                message = f"{self.path}: must {kind} {_short(self.value)}"
                issues.append(Issue("value", message, expression=(at,)))
        return issues


@dataclass(frozen=True)
class Slice:
    path: str
    parent: tuple[str, ...]
    name: str
    slice_name: str
    pattern: Any  # the item must contain it; for extension slices {"url": ...}
    min: int
    max: int | None
    extension: str | None  # profile of the extension items

    def check(self, root: Any, where: str, ctx: Context) -> list[Issue]:
        issues = []
        for value, at in nodes(root, self.parent, where):
            matching = [n for n in children(value, self.name, at) if contains(n[0], self.pattern)]
            loc = f"{at}.{self.name}"
            what = f"{self.path}: slice '{self.slice_name}' ({_short(self.pattern)})"
            if len(matching) < self.min:
                message = f"{what} needs at least {self.min} item(s), found {len(matching)}"
                issues.append(Issue("required", message, expression=(loc,)))
            elif self.max is not None and len(matching) > self.max:
                message = f"{what} allows at most {self.max} item(s), found {len(matching)}"
                issues.append(Issue("structure", message, expression=(loc,)))
            profile = ctx.profile(self.extension) if self.extension else None
            if profile is not None:
                for item, item_at in matching:
                    issues += profile.check(item, item_at, ctx)
        return issues


@dataclass(frozen=True)
class Binding:
    path: str
    segments: tuple[str, ...]
    value_set: ValueSetIndex

    def check(self, root: Any, where: str, ctx: Context) -> list[Issue]:
        issues = []
        for value, at in nodes(root, self.segments, where):
            if coded_in(value, self.value_set) is False:
                message = (
                    f"{self.path}: {_short(value)} is not in ValueSet "
                    f"{self.value_set.url} (required binding)"
                )
                issues.append(Issue("code-invalid", message, expression=(at,)))
        return issues


@dataclass(frozen=True)
class Invariant:
    path: str
    key: str
    human: str
    evaluate: Callable[[Any, dict[str, Any]], list[Any]]

    def check(self, root: Any, where: str, ctx: Context) -> list[Issue]:
        loc = _at(where, self.path)
        try:
            result = self.evaluate(root, {"resource": root})
        except Exception as exc:  # fhirpathpy raises anything on odd data
            message = f"Constraint {self.key} ({self.human}) could not be evaluated: {exc}"
            return [Issue("invariant", message[:500], expression=(loc,))]
        if result == [False]:
            message = f"Constraint {self.key} failed: {self.human}"
            return [Issue("invariant", message, expression=(loc,))]
        return []


@dataclass(frozen=True)
class ReferenceTarget:
    path: str
    segments: tuple[str, ...]
    allowed: frozenset[str]

    def check(self, root: Any, where: str, ctx: Context) -> list[Issue]:
        issues = []
        for value, at in nodes(root, self.segments, where):
            if not isinstance(value, dict):
                continue
            target = reference_type(value, ctx.resource)
            if target is not None and target not in self.allowed:
                expected = " or ".join(sorted(self.allowed))
                message = f"{self.path}: refers to a {target}, expected {expected}"
                issues.append(Issue("invalid", message, expression=(at,)))
        return issues


def reference_type(reference: dict[str, Any], resource: dict[str, Any]) -> str | None:
    """The type a Reference points to, when it can be told without resolving it.

    ``Type/id`` (relative or absolute, with or without ``_history``), ``#id`` of a contained
    resource, else ``Reference.type``; ``urn:uuid:``/``urn:oid:`` and logical references
    (identifier only) are not known until resolved and are let through. Its own pattern
    rather than ``search.fhirpath.split_reference``: a type the server does not know must
    still be named in the error, where search simply ignores it.
    """
    literal = reference.get("reference")
    if isinstance(literal, str):
        if literal.startswith("#"):
            for contained in resource.get("contained") or []:
                if isinstance(contained, dict) and contained.get("id") == literal[1:]:
                    found = contained.get("resourceType")
                    return found if isinstance(found, str) else None
            return None
        match = _LITERAL.search(literal)
        if match:
            return match.group(1)
    declared = reference.get("type")
    return declared if isinstance(declared, str) else None


def _equal(value: Any, fixed: Any) -> bool:
    if isinstance(value, bool) or isinstance(fixed, bool):
        return value is fixed
    return bool(value == fixed)


@dataclass(frozen=True)
class CompiledProfile:
    """A profile ready to check instances: its canonical, its type and its rules."""

    url: str
    version: str
    type: str
    rules: tuple[Rule, ...]

    def check(self, root: Any, where: str, ctx: Context) -> list[Issue]:
        issues: list[Issue] = []
        for rule in self.rules:
            issues += rule.check(root, where, ctx)
        return issues


def compile_profile(
    sd: dict[str, Any],
    types_by_url: Mapping[str, str],
    value_sets: Mapping[str, ValueSetIndex],
) -> CompiledProfile:
    """Compile ``sd``'s snapshot; ValueError for what the validator cannot enforce."""
    url: str = sd["url"]
    constrained = {e["id"] for e in sd["differential"]["element"]}
    rules: list[Rule] = []
    for element in sd["snapshot"]["element"]:
        if element["id"] in constrained:
            rules += _element_rules(url, element, types_by_url, value_sets)
    return CompiledProfile(url, sd.get("version", ""), sd["type"], tuple(rules))


def _element_rules(
    url: str,
    element: dict[str, Any],
    types_by_url: Mapping[str, str],
    value_sets: Mapping[str, ValueSetIndex],
) -> list[Rule]:
    path: str = element["path"]
    segments = tuple(path.split(".")[1:])
    if ":" in element["id"] and "sliceName" not in element:
        raise ValueError(f"{url}: constraints inside slices are not supported ({element['id']})")
    high = None if element["max"] == "*" else int(element["max"])
    if "sliceName" in element:
        return [_slice(url, element, segments, high)]
    rules: list[Rule] = []
    if segments and (element["min"] > 0 or high is not None):
        rules.append(Cardinality(path, segments[:-1], segments[-1], element["min"], high))
    types = [t["code"] for t in element.get("type", [])]
    if segments and segments[-1].endswith("[x]") and types:
        rules.append(ChoiceTypes(path, segments[:-1], segments[-1][:-3], frozenset(types)))
    for key, value in element.items():
        if key.startswith("fixed") or key.startswith("pattern"):
            rules.append(FixedValue(path, segments, value, key.startswith("fixed")))
    binding = element.get("binding") or {}
    if binding.get("strength") == "required" and binding.get("valueSet", "") in value_sets:
        rules.append(Binding(path, segments, value_sets[binding["valueSet"]]))
    for constraint in element.get("constraint", []):
        if constraint.get("source") == url and constraint.get("severity") == "error":
            rules.append(_invariant(path, constraint))
    targets = [p for t in element.get("type", []) for p in t.get("targetProfile", [])]
    if targets:
        allowed = frozenset(_target_type(p, types_by_url) for p in targets)
        rules.append(ReferenceTarget(path, segments, allowed))
    return rules


def _slice(url: str, element: dict[str, Any], segments: tuple[str, ...], high: int | None) -> Slice:
    patterns = [v for k, v in element.items() if k.startswith(("pattern", "fixed"))]
    profiles = [p for t in element.get("type", []) for p in t.get("profile", [])]
    extension = None
    if patterns:
        pattern = patterns[0]
    elif profiles:
        extension = profiles[0]
        pattern = {"url": extension}
    else:
        raise ValueError(f"{url}: slice {element['id']} has no pattern or extension profile")
    return Slice(
        element["path"],
        segments[:-1],
        segments[-1],
        element["sliceName"],
        pattern,
        element["min"],
        high,
        extension,
    )


def _invariant(path: str, constraint: dict[str, Any]) -> Invariant:
    expression: str = constraint["expression"]
    if "." in path:
        expression = f"{fhirpath_of(path)}.all({expression})"
    try:
        evaluate = compile_invariant(expression)
    except ValueError as exc:
        raise ValueError(f"constraint {constraint['key']} does not compile: {exc}") from exc
    return Invariant(path, constraint["key"], constraint["human"], evaluate)


def _target_type(profile: str, types_by_url: Mapping[str, str]) -> str:
    if profile.startswith(CORE_SD):
        return profile[len(CORE_SD) :]
    if profile in types_by_url:
        return types_by_url[profile]
    raise ValueError(f"target profile {profile} is neither a core type nor a program profile")

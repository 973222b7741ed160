"""The search-parameter registry: every standard R4 parameter, compiled once, per type.

http://hl7.org/fhir/R4/searchparameter-registry.html. Definitions come from
``fhir_server/data/search-parameters.json.gz`` (``tools/build_search_data.py``). Each
definition is split per base type: ``AllergyIntolerance.code | Condition.code | ...`` becomes
one :class:`SearchParam` per type whose expression is only that type's part, compiled against
that type, so extraction never evaluates another type's path. ``Resource`` and
``DomainResource`` parameters (``_id``, ``_lastUpdated``, ``_tag``...) are copied to every
type they apply to. Definitions that cannot be compiled are left out and listed in
:attr:`Registry.problems`; ``_text``, ``_content`` and ``_query`` have no expression: they are
registered (the query side may support them otherwise) but not indexed.

Custom SearchParameter resources are added with :meth:`Registry.add`, which compiles them
first. Lookups never lock: each type's table is replaced, not mutated.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast, get_args

from fhir_server.fhir import structure
from fhir_server.search.fhirpath import (
    CompiledPath,
    FhirPathError,
    compile_path,
    root_type,
    union_terms,
)

__all__ = [
    "Component",
    "ParamType",
    "Problem",
    "Registry",
    "SearchParam",
    "default_registry",
]

ParamType = Literal[
    "number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"
]
_PARAM_TYPES = frozenset(get_args(ParamType))
T = TypeVar("T")
_DATA_FILE = "search-parameters.json.gz"
_CODE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")
_NOT_DOMAIN = frozenset({"Bundle", "Binary", "Parameters"})


@dataclass(frozen=True, slots=True)
class Component:
    """One part of a composite parameter, evaluated on each value of the composite's path.

    ``compiled`` holds the expression compiled for each branch of the composite's own
    compiled path, in the same order (``Observation | Observation.component`` has two).
    """

    definition: str  # canonical URL of the component's SearchParameter
    expression: str
    param: SearchParam  # the component's definition, for the composite's resource type
    compiled: tuple[CompiledPath, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SearchParam:
    """A search parameter as it applies to one resource type.

    ``expression`` is the part of the definition's expression for ``resource_type`` (None for
    ``_text``/``_content``/``_query``); ``compiled`` is it compiled (None when not indexed).
    ``base`` lists every base of the definition, ``targets`` the reference target types.
    """

    code: str
    resource_type: str
    type: ParamType
    expression: str | None
    url: str
    base: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    modifiers: tuple[str, ...] = ()
    comparators: tuple[str, ...] = ()
    description: str = field(default="", compare=False, repr=False)
    compiled: CompiledPath | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Problem:
    """A definition, or its part for one type, that is not registered, and why."""

    url: str
    code: str
    resource_type: str
    reason: str


def _types_of(base: str) -> list[str]:
    """Concrete resource types a base names (``Resource`` / ``DomainResource`` expand)."""
    if base == "Resource":
        return sorted(structure.resource_types())
    if base == "DomainResource":
        return sorted(structure.resource_types() - _NOT_DOMAIN)
    return [base]


def _part_for(expression: str, resource_type: str) -> str:
    """The ``|`` terms of ``expression`` that apply to ``resource_type``, re-joined."""
    terms = union_terms(expression)
    if len(terms) == 1:
        return expression
    generic = (None, "Resource", "DomainResource", resource_type)
    return " | ".join(term for term in terms if root_type(term) in generic)


class _Invalid(Exception):
    """A definition rejected for one type; the message is the reason."""


class Registry:
    """Search parameters by resource type and code, with compiled expressions."""

    def __init__(self, definitions: Iterable[Mapping[str, Any]] = ()) -> None:
        self._lock = threading.Lock()
        self._by_type: dict[str, Mapping[str, SearchParam]] = {}
        self._indexed: dict[str, tuple[Mapping[str, SearchParam], tuple[SearchParam, ...]]] = {}
        self._derived: dict[tuple[str, Callable[..., Any]], tuple[tuple[SearchParam, ...], Any]]
        self._derived = {}
        self._unions: dict[str, tuple[Mapping[str, SearchParam], Mapping[str, tuple[str, ...]]]]
        self._unions = {}
        self._definitions: dict[str, Mapping[str, Any]] = {}
        self._problems: list[Problem] = []
        definitions = list(definitions)
        for definition in definitions:
            self._definitions[str(definition.get("url"))] = definition
        # Composites last: their components refer to the other parameters.
        ordered = sorted(definitions, key=lambda d: d.get("type") == "composite")
        tables: dict[str, dict[str, SearchParam]] = {}
        for definition in ordered:
            for resource_type in self._bases(definition):
                try:
                    param = self._build(definition, resource_type, tables.get(resource_type, {}))
                except _Invalid as exc:
                    self._problems.append(_problem(definition, resource_type, str(exc)))
                    continue
                table = tables.setdefault(resource_type, {})
                if param.code in table:
                    self._problems.append(
                        _problem(definition, resource_type, f"duplicate code {param.code!r}")
                    )
                table[param.code] = param
        self._by_type = {t: MappingProxyType(table) for t, table in tables.items()}

    @classmethod
    def standard(cls) -> Registry:
        """A new registry of the 1,378 standard R4 parameters (from the packaged data)."""
        return cls(_standard_definitions())

    @property
    def problems(self) -> tuple[Problem, ...]:
        """Definitions (per type) left out because their expression does not compile."""
        return tuple(self._problems)

    def resource_types(self) -> frozenset[str]:
        """Resource types with at least one parameter."""
        return frozenset(self._by_type)

    def params_for(self, resource_type: str) -> Mapping[str, SearchParam]:
        """All parameters of a type by code, including the Resource/DomainResource ones."""
        return self._by_type.get(resource_type, _EMPTY)

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        """One parameter, or None when the type has no parameter with that code."""
        return self._by_type.get(resource_type, _EMPTY).get(code)

    def indexed(self, resource_type: str) -> tuple[SearchParam, ...]:
        """The parameters of a type that have a compiled expression (what extraction runs),
        except those answered from the resources table's own columns."""
        table = self.params_for(resource_type)
        cached = self._indexed.get(resource_type)
        if cached is not None and cached[0] is table:  # the table is replaced by add()
            return cached[1]
        unions = self.unions(resource_type)
        found = tuple(
            p
            for p in table.values()
            if p.compiled is not None and p.code not in COLUMN_PARAMS and p.code not in unions
        )
        self._indexed[resource_type] = (table, found)
        return found

    def unions(self, resource_type: str) -> Mapping[str, tuple[str, ...]]:
        """Parameters whose rows are exactly other parameters' rows, with those codes:
        Observation ``combo-code`` (``Observation.code | Observation.component.code``) is
        ``code`` + ``component-code``. They are not indexed; a search on them reads the rows
        of their sources (storage/search_query.py), so an Observation writes ~5 fewer rows."""
        table = self.params_for(resource_type)
        cached = self._unions.get(resource_type)
        if cached is not None and cached[0] is table:
            return cached[1]
        found = _unions(table)
        self._unions[resource_type] = (table, found)
        return found

    def derived(self, resource_type: str, build: Callable[[tuple[SearchParam, ...]], T]) -> T:
        """``build(self.indexed(resource_type))``, computed once per version of the type's
        parameters (extraction plans): rebuilt after :meth:`add` changes them."""
        params = self.indexed(resource_type)
        key = (resource_type, build)
        cached = self._derived.get(key)
        if cached is not None and cached[0] is params:
            return cast(T, cached[1])
        value = build(params)
        self._derived[key] = (params, value)
        return value

    def definition(self, url: str) -> Mapping[str, Any] | None:
        """The SearchParameter resource registered under a canonical URL."""
        return self._definitions.get(url)

    def add(self, search_parameter: Mapping[str, Any]) -> list[SearchParam]:
        """Register a custom SearchParameter resource for each of its bases.

        The expression must compile for every base; a parameter with the same code replaces
        the existing one for that type, and a definition with the same url replaces the
        earlier version everywhere. Raises ValueError saying what is wrong.
        """
        definition = dict(search_parameter)
        _check_shape(definition)
        url = str(definition["url"])
        with self._lock:
            previous = self._definitions.get(url)
            self._definitions[url] = definition
            try:
                built = [
                    self._build(definition, t, self._by_type.get(t, _EMPTY), strict=True)
                    for t in self._bases(definition)
                ]
            except _Invalid as exc:
                if previous is None:
                    del self._definitions[url]
                else:
                    self._definitions[url] = previous
                raise ValueError(f"SearchParameter {url!r}: {exc}") from exc
            changed = {p.resource_type for p in built}
            if previous is not None:  # an update: drop what the old version registered
                changed |= set(self._bases(previous))
            for resource_type in changed:
                table = dict(self._by_type.get(resource_type, _EMPTY))
                for code in [c for c, p in table.items() if p.url == url]:
                    del table[code]
                table.update((p.code, p) for p in built if p.resource_type == resource_type)
                self._by_type[resource_type] = MappingProxyType(table)
        return built

    def copy(self) -> Registry:
        """An independent registry with the same parameters (compiled paths are shared)."""
        clone = Registry()
        clone._by_type = dict(self._by_type)
        clone._definitions = dict(self._definitions)
        clone._problems = list(self._problems)
        return clone

    # ------------------------------------------------------------------------- building

    def _bases(self, definition: Mapping[str, Any]) -> list[str]:
        types: list[str] = []
        for base in definition.get("base") or ():
            for resource_type in _types_of(str(base)):
                if resource_type not in types:
                    types.append(resource_type)
        return types

    def _build(
        self,
        definition: Mapping[str, Any],
        resource_type: str,
        known: Mapping[str, SearchParam],
        strict: bool = False,
    ) -> SearchParam:
        expression = definition.get("expression")
        part: str | None = None
        compiled: CompiledPath | None = None
        if isinstance(expression, str) and expression.strip():
            try:
                part = _part_for(expression, resource_type)
                if not part:
                    raise _Invalid(f"the expression has no part for {resource_type}")
                compiled = compile_path(part, resource_type)
            except FhirPathError as exc:
                raise _Invalid(f"expression does not compile for {resource_type}: {exc}") from exc
            if not compiled.branches:
                raise _Invalid(f"the expression selects nothing on {resource_type}")
        elif strict:
            raise _Invalid("an expression is needed to index a custom parameter")
        param = SearchParam(
            code=str(definition["code"]),
            resource_type=resource_type,
            type=cast(ParamType, definition["type"]),
            expression=part,
            url=str(definition.get("url")),
            base=tuple(definition.get("base") or ()),
            targets=tuple(definition.get("target") or ()),
            modifiers=tuple(definition.get("modifier") or ()),
            comparators=tuple(definition.get("comparator") or ()),
            description=str(definition.get("description") or ""),
            compiled=compiled,
        )
        if param.type != "composite" or compiled is None:
            return param
        components = tuple(
            self._component(c, resource_type, compiled, known)
            for c in definition.get("component") or ()
        )
        if not components:
            raise _Invalid("a composite parameter needs components")
        return replace(param, components=components)

    def _component(
        self,
        component: Mapping[str, Any],
        resource_type: str,
        composite: CompiledPath,
        known: Mapping[str, SearchParam],
    ) -> Component:
        url = str(component.get("definition"))
        expression = str(component.get("expression") or "")
        definition = self._definitions.get(url)
        if definition is None:
            raise _Invalid(f"component definition {url!r} is not a known SearchParameter")
        if definition.get("type") == "composite":
            raise _Invalid(f"component {url!r} is itself composite")
        param = next((p for p in known.values() if p.url == url), None)
        if param is None:
            param = SearchParam(
                code=str(definition.get("code")),
                resource_type=resource_type,
                type=cast(ParamType, definition.get("type")),
                expression=None,
                url=url,
            )
        try:
            compiled = tuple(
                compile_path(expression, branch.type, resource_type)
                for branch in composite.branches
            )
        except FhirPathError as exc:
            raise _Invalid(f"component {url!r} does not compile: {exc}") from exc
        return Component(url, expression, param, compiled)


#: Answered from columns of ``resources`` (``res_id``, ``last_updated``) by the query builder
#: (storage/search_query.py), for filters and ``_sort`` alike: index rows of them would only
#: cost writes (two of ~15 rows per resource).
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})

_EMPTY: Mapping[str, SearchParam] = MappingProxyType({})

#: Types whose rows follow from the parameter type and the expression alone (composites also
#: from their components' expressions and types, compared below; references depend on their
#: targets): a union of such expressions has the union of their rows.
_UNION_TYPES = frozenset({"token", "string", "date", "number", "quantity", "uri", "composite"})


def _shape(param: SearchParam) -> tuple[str, tuple[tuple[str, str], ...]]:
    """What besides the expression decides a parameter's rows."""
    return param.type, tuple((c.expression, c.param.type) for c in param.components)


#: Only the spec's own parameters take part in unions: a custom SearchParameter added later
#: must not turn a parameter whose rows exist into one read from rows that do not.
SPEC_PARAMETERS = "http://hl7.org/fhir/SearchParameter/"


def _unions(table: Mapping[str, SearchParam]) -> Mapping[str, tuple[str, ...]]:
    """Codes whose expression parts are exactly those of other indexed parameters of the same
    type (disjoint, decided from fewer parts up), mapped to those parameters' codes."""
    parts = {
        code: _union_parts(p.expression)
        for code, p in table.items()
        if p.compiled is not None
        and p.expression
        and p.type in _UNION_TYPES
        and code not in COLUMN_PARAMS
        and p.url.startswith(SPEC_PARAMETERS)
    }
    shapes = {code: _shape(table[code]) for code in parts}
    found: dict[str, tuple[str, ...]] = {}
    indexed: list[str] = []
    for code in sorted(parts, key=lambda c: (len(parts[c]), c)):
        mine = parts[code]
        if len(mine) > 1:
            candidates = sorted(
                (o for o in indexed if shapes[o] == shapes[code] and parts[o] <= mine),
                key=lambda o: (-len(parts[o]), o),
            )
            chosen: list[str] = []
            covered: frozenset[str] = frozenset()
            for other in candidates:
                if covered.isdisjoint(parts[other]):
                    chosen.append(other)
                    covered |= parts[other]
            if covered == mine:
                found[code] = tuple(sorted(chosen))
                continue
        indexed.append(code)
    return MappingProxyType(found)


def _union_parts(expression: str) -> frozenset[str]:
    """The top-level ``|`` operands of an expression, whitespace collapsed."""
    parts: list[str] = []
    depth, quoted, start = 0, False, 0
    for i, char in enumerate(expression):
        if quoted:
            quoted = char != "'" or expression[i - 1] == "\\"
        elif char == "'":
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(expression[start:i])
            start = i + 1
    parts.append(expression[start:])
    return frozenset(" ".join(p.split()) for p in parts)


def _problem(definition: Mapping[str, Any], resource_type: str, reason: str) -> Problem:
    return Problem(str(definition.get("url")), str(definition.get("code")), resource_type, reason)


def _check_shape(definition: Mapping[str, Any]) -> None:
    """Reject SearchParameter resources the registry cannot use, saying why."""
    if definition.get("resourceType") != "SearchParameter":
        raise ValueError("not a SearchParameter resource")
    url, code = definition.get("url"), definition.get("code")
    if not isinstance(url, str) or not url:
        raise ValueError("SearchParameter.url is required")
    if not isinstance(code, str) or not _CODE.match(code):
        raise ValueError(f"SearchParameter {url!r}: code {code!r} is not a valid name")
    if definition.get("type") not in _PARAM_TYPES:
        raise ValueError(f"SearchParameter {url!r}: unknown type {definition.get('type')!r}")
    bases = definition.get("base")
    if not isinstance(bases, list) or not bases:
        raise ValueError(f"SearchParameter {url!r}: base is required")
    known = structure.resource_types() | {"Resource", "DomainResource"}
    unknown = [b for b in bases if b not in known]
    if unknown:
        raise ValueError(f"SearchParameter {url!r}: unknown base type(s) {unknown}")


def _standard_definitions() -> list[dict[str, Any]]:
    raw = (resources.files("fhir_server") / "data" / _DATA_FILE).read_bytes()
    data = json.loads(gzip.decompress(raw))
    return cast(list[dict[str, Any]], data["searchParameters"])


@cache
def default_registry() -> Registry:
    """The process-wide registry (standard parameters plus those added at run time)."""
    return Registry.standard()

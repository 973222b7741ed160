"""The mapping files as pydantic models: what each tier may say, checked when it is loaded.

Tiers, as in the HL7 v2-to-FHIR IG: a message file lists the segment mappings that apply;
a segment mapping makes (or contributes to) one resource; a datatype mapping turns one v2
value into a FHIR element or a separate resource; code maps live in ``mappings/codes``.
Everything a rule may do is a field here; named transforms and conditions come from fixed
vocabularies (``transforms.NAMES``, ``conditions.Condition``), never from code in strings.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.mapping.paths import Path, parse_path

if TYPE_CHECKING:
    from adapters.mapping.compiled import RulePlan
    from adapters.mapping.conditions import Check
    from adapters.mapping.values import Reader

# The cached properties below hold each mapping's compiled form (closures deciding once what
# the engine would otherwise re-interpret per value); they import lazily, since the
# compiling modules read these models.

_STRICT = ConfigDict(extra="forbid", frozen=True)

Scope = Literal["message", "preceding", "following", "all", "same"]


class Locator(BaseModel):
    """Where a v2 value is: the current value's components, or a field of a segment.

    Without ``segment`` a ``field`` is read from the segment being mapped; with it, from the
    segment chosen by ``select`` (e.g. the nearest preceding OBR). ``components`` reads several
    components as one composite value (EI.2-4 as an HD, say).
    """

    model_config = _STRICT

    segment: str | None = None
    select: Select | None = None
    field: int | None = Field(default=None, ge=1)
    component: int | None = Field(default=None, ge=1)
    components: list[int] | None = None
    subcomponent: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> Locator:
        if self.select is not None and self.segment is None:
            raise ValueError("'select' needs 'segment'")
        if self.segment is not None and self.field is None:
            raise ValueError("reading another segment needs 'field'")
        if self.component is not None and self.components is not None:
            raise ValueError("give 'component' or 'components', not both")
        if self.subcomponent is not None and self.component is None:
            raise ValueError("'subcomponent' needs 'component'")
        return self

    @cached_property
    def has_source(self) -> bool:
        return self.field is not None or self.component is not None or bool(self.components)

    @cached_property
    def plain_field(self) -> int | None:
        """The field number when this reads a whole field of the segment being mapped."""
        if self.segment is None and self.component is None and not self.components:
            return self.field
        return None

    @cached_property
    def reader(self) -> Reader:
        """The values this locator addresses in a context, as a compiled function."""
        from adapters.mapping.values import reader

        return reader(self)


class Condition(BaseModel):
    """Exactly one named predicate (the fixed vocabulary lives in ``conditions.py``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    valued: Locator | None = None
    empty: Locator | None = None
    equals: ValueTest | None = None
    in_: ValuesTest | None = Field(default=None, alias="in")
    not_in: ValuesTest | None = None
    trigger_in: list[str] | None = None
    unset: str | None = None  # a path of the element being built is still empty

    @model_validator(mode="after")
    def _one(self) -> Condition:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a condition names exactly one predicate, got {given or 'none'}")
        return self


class ValueTest(Locator):
    value: str


class ValuesTest(Locator):
    values: list[str]


class Select(BaseModel):
    """Which occurrence(s) of a segment or mapping, relative to the segment being mapped."""

    model_config = _STRICT

    scope: Scope = "message"
    until: list[str] = []  # for preceding/following: stop at these segment names
    when: list[Condition] = []  # evaluated on the candidate segment

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, data: Any) -> Any:
        return _listify_when(data)

    @cached_property
    def check(self) -> Check | None:
        """``when`` compiled (None: no conditions)."""
        return _check(self.when)


def _check(conditions: list[Condition]) -> Check | None:
    from adapters.mapping.conditions import check_all

    return check_all(conditions)


def _filled(value: Any) -> bool:
    """No empty string, list or mapping anywhere in a constant (FHIR JSON forbids them)."""
    if isinstance(value, dict):
        return bool(value) and all(_filled(v) for v in value.values())
    if isinstance(value, list):
        return bool(value) and all(_filled(v) for v in value)
    return bool(value != "")


def _listify_when(data: Any) -> Any:
    if isinstance(data, dict) and isinstance(data.get("when"), dict):
        return {**data, "when": [data["when"]]}
    return data


Required = Literal["error", "drop"]


class ReferenceById(BaseModel):
    """A reference to a resource that may not be in this message, by its deterministic id."""

    model_config = _STRICT

    type: str
    id: list[IdAlternative]


class Rule(Locator):
    """Set one target path from one source, optionally through a datatype, map or transform."""

    target: str | None = None
    value: Any = None  # a constant
    repeat: Literal["first", "all", "join"] = "first"
    datatype: str | None = None
    resource: str | None = None  # a resource-making datatype mapping; target gets a Reference
    reference: ReferenceById | None = None
    map: str | None = None  # code map id: the mapped code
    map_coding: str | None = None  # code map id: a Coding
    transform: str | None = None
    table: str | None = None  # v2 table that codes without a coding system belong to
    params: dict[str, Any] = {}
    build: list[Rule] | None = None  # sub-rules building one element per value
    defaults: dict[str, Any] = {}  # constants for the produced element where unset
    requires: list[str] = []  # the produced element is dropped unless one of these is set
    when: list[Condition] = []
    required: Required | None = None
    overwrite: bool = False
    append: bool = False  # strings: add to an existing value on a new line

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, data: Any) -> Any:
        return _listify_when(data)

    @model_validator(mode="after")
    def _one_way(self) -> Rule:
        ways = [
            name
            for name in ("datatype", "resource", "reference", "map", "map_coding", "build")
            if getattr(self, name) is not None
        ]
        if len(ways) > 1:
            raise ValueError(f"a rule converts one way, got {ways}")
        if self.value is not None and (self.has_source or ways or self.transform):
            raise ValueError("a constant 'value' takes no source, datatype or transform")
        if self.value is not None and not _filled(self.value):
            raise ValueError("a constant 'value' must not be or hold an empty string, list or map")
        if self.target is None and self.resource is None:
            raise ValueError("a rule without 'target' must make a 'resource'")
        if self.target is not None:
            parse_path(self.target)
        return self

    @cached_property
    def path(self) -> Path | None:
        return parse_path(self.target) if self.target is not None else None

    @cached_property
    def choice(self) -> bool:
        """The target is a choice element (``value[x]``)."""
        path = self.path
        return bool(path) and path is not None and path[-1].kind == "choice"


class IdPart(Locator):
    """One source of a deterministic id; qualifiers (the sender, say) do not identify alone."""

    qualifier: bool = False
    prefer: ValuesTest | None = None  # among repetitions, the first whose component matches
    when: list[Condition] = []

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, data: Any) -> Any:
        return _listify_when(data)

    @cached_property
    def check(self) -> Check | None:
        """``when`` compiled (None: no conditions)."""
        return _check(self.when)


class IdAlternative(BaseModel):
    model_config = _STRICT

    parts: list[IdPart]


class Link(BaseModel):
    """A reference from the resource made here to resources made by other mappings."""

    model_config = _STRICT

    target: str
    to: list[str] = []  # mapping names
    select: Select = Select()
    reference_at: str | None = None  # the Reference goes to this path inside a new element
    extra: dict[str, Any] = {}  # constants of that new element
    to_all: bool = False  # every other resource of the bundle (Provenance.target)
    required: bool = False

    @model_validator(mode="before")
    @classmethod
    def _to_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("to"), str):
            return {**data, "to": [data["to"]]}
        return data

    @model_validator(mode="after")
    def _targets(self) -> Link:
        if bool(self.to) == self.to_all:
            raise ValueError("a link names mappings in 'to' or sets 'to_all', not both")
        parse_path(self.target)
        return self

    @cached_property
    def path(self) -> Path:
        return parse_path(self.target)

    @cached_property
    def reference_path(self) -> Path | None:
        return parse_path(self.reference_at) if self.reference_at is not None else None


class Attach(BaseModel):
    """Where a contributing segment's rules go: the resource made from another mapping."""

    model_config = _STRICT

    to: list[str]
    select: Select = Select()

    @model_validator(mode="before")
    @classmethod
    def _to_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("to"), str):
            return {**data, "to": [data["to"]]}
        return data


OnDuplicate = Literal["merge", "distinguish"]


class SegmentMapping(BaseModel):
    """A segment makes one resource per occurrence, or contributes to another's resource."""

    model_config = _STRICT

    name: str
    segment: str
    description: str = ""
    resource: str | None = None
    id: list[IdAlternative] = []
    on_duplicate: OnDuplicate = "merge"
    merge_into: Attach | None = None  # with resource: join this resource when one is found
    contributes_to: Attach | None = None  # without resource
    when: list[Condition] = []
    rules: list[Rule] = []
    links: list[Link] = []

    @model_validator(mode="before")
    @classmethod
    def _listify(cls, data: Any) -> Any:
        return _listify_when(data)

    @model_validator(mode="after")
    def _kind(self) -> SegmentMapping:
        if (self.resource is None) == (self.contributes_to is None):
            raise ValueError("a segment mapping has either 'resource' or 'contributes_to'")
        if self.resource is not None and not self.id:
            raise ValueError("a resource needs 'id' alternatives (deterministic ids)")
        if self.merge_into is not None and self.resource is None:
            raise ValueError("'merge_into' needs 'resource'")
        if self.links and self.resource is None:
            raise ValueError("'links' belong to mappings that make a resource")
        return self

    @cached_property
    def check(self) -> Check | None:
        """``when`` compiled (None: no conditions)."""
        return _check(self.when)

    @cached_property
    def plans(self) -> tuple[RulePlan, ...]:
        """``rules`` compiled for the engine."""
        from adapters.mapping.compiled import plans

        return plans(self.rules)


class DatatypeMapping(BaseModel):
    """One v2 value (a field repetition or a component) to a FHIR element or resource."""

    model_config = _STRICT

    name: str
    datatype: str
    produces: str
    description: str = ""
    resource: bool = False
    id: list[IdAlternative] = []
    on_duplicate: OnDuplicate = "merge"
    requires: list[str] = []
    rules: list[Rule]

    @model_validator(mode="after")
    def _resource_id(self) -> DatatypeMapping:
        if self.resource and not self.id:
            raise ValueError("a resource-making datatype mapping needs 'id' alternatives")
        return self

    @cached_property
    def plans(self) -> tuple[RulePlan, ...]:
        """``rules`` compiled for the engine."""
        from adapters.mapping.compiled import plans

        return plans(self.rules)

    @cached_property
    def requires_paths(self) -> tuple[Path, ...]:
        return tuple(parse_path(p) for p in self.requires)

    @cached_property
    def context_free(self) -> bool:
        """Its result depends on the value alone (and MSH): the same value, the same result."""
        locators: list[Locator] = []
        stack: list[Rule] = list(self.rules)
        while stack:
            rule = stack.pop()
            locators.append(rule)
            locators.extend(_condition_locators(rule.when))
            stack.extend(rule.build or [])
        for alternative in self.id:
            for part in alternative.parts:
                locators.append(part)
                locators.extend(_condition_locators(part.when))
        return all(loc.segment in (None, "MSH") for loc in locators)


def _condition_locators(conditions: list[Condition]) -> list[Locator]:
    found: list[Locator] = []
    for c in conditions:
        found.extend(x for x in (c.valued, c.empty, c.equals, c.in_, c.not_in) if x is not None)
    return found


class MessageMapping(BaseModel):
    """Which segment mappings apply to a message structure, and what it cannot do without."""

    model_config = _STRICT

    name: str
    description: str = ""
    extends: str | None = None  # a site overlay: start from this mapping's lists
    required: list[str] = []  # segments; missing one is an AE (ERR code 100)
    mappings: list[str] = []
    ignore: list[str] = []  # segments known to carry nothing we map (no warning)
    add: list[str] = []  # with extends: more mappings
    remove: list[str] = []  # with extends: mappings to drop


class CodeMapEntry(BaseModel):
    model_config = _STRICT

    code: str
    system: str | None = None
    display: str | None = None


class CodeMap(BaseModel):
    """A ConceptMap-like code map (v2 code to FHIR code), generated into ``mappings/codes``."""

    model_config = _STRICT

    id: str
    title: str = ""
    source: str
    target: str
    origin: str = ""
    default: CodeMapEntry | None = None
    map: dict[str, CodeMapEntry]
    #: Codes known to have no equivalent: no value and no warning.
    unmapped: list[str] = []

    @model_validator(mode="before")
    @classmethod
    def _short_entries(cls, data: Any) -> Any:
        """``M: male`` is shorthand for ``M: {code: male}``."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        entries = data.get("map")
        if isinstance(entries, dict):
            data["map"] = {
                str(k): {"code": v} if isinstance(v, str) else v for k, v in entries.items()
            }
        if isinstance(data.get("default"), str):
            data["default"] = {"code": data["default"]}
        return data


class Event(BaseModel):
    model_config = _STRICT

    message_type: str
    trigger_event: str
    structure: str
    mapping: str
    description: str = ""


class Profile(BaseModel):
    """Site-wide settings of the v2 conversion (``mappings/hl7v2/profile.yaml``)."""

    model_config = _STRICT

    versions: list[str]
    default_timezone: str = "Europe/Berlin"


Locator.model_rebuild()
Condition.model_rebuild()
ValueTest.model_rebuild()
ValuesTest.model_rebuild()
Select.model_rebuild()
ReferenceById.model_rebuild()
Rule.model_rebuild()
IdPart.model_rebuild()

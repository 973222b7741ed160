"""Rules compiled once per mapping: what the engine would otherwise decide for every value.

A ``RulePlan`` holds a rule's decisions made when its mapping is first used: whether an
empty field lets it be skipped, its conditions and source reader as functions, how it
converts a value (``kind``), and its target path as a setter. The mapping stays data; this
is only its faster form, and the engine knows no rule by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.hl7v2.parse import Repetition
from adapters.mapping.conditions import Check, check_all
from adapters.mapping.paths import Assign, Path, assigner, parse_path
from adapters.mapping.spec import Rule
from adapters.mapping.transforms import NAMES, Function
from adapters.mapping.values import Context, is_empty

#: How a rule converts each value (``kind``).
BUILD, DATATYPE, RESOURCE, REFERENCE, MAP, TRANSFORM = range(6)

Source = Callable[[Context], list[Repetition]]


class RulePlan:
    """One rule, compiled (see the module docstring)."""

    __slots__ = (
        "assign",
        "check",
        "choice",
        "clone",
        "constant",
        "defaults",
        "first",
        "function",
        "is_constant",
        "join",
        "kind",
        "narrow",
        "params",
        "requires",
        "rule",
        "skip",
        "skip_component",
        "source",
        "sub",
        "table",
    )

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        #: Skip the rule when this field of the segment is empty (nothing is required).
        self.skip: int | None = rule.plain_field if rule.required is None else None
        #: Skip it when this component (and subcomponent) of the current value is empty.
        self.skip_component: tuple[int, int | None] | None = None
        if rule.required is None and _reads_component(rule):
            assert rule.component is not None
            self.skip_component = (rule.component, rule.subcomponent)
        self.check: Check | None = check_all(rule.when)
        self.is_constant = rule.value is not None
        self.constant: Any = rule.value
        self.clone = isinstance(rule.value, (dict, list))
        path = rule.path
        self.assign: Assign | None = (
            assigner(path, rule.overwrite, rule.append) if path is not None else None
        )
        self.choice = rule.choice
        self.source: Source = _source(rule)
        self.first = rule.repeat == "first"
        self.join = rule.repeat == "join"
        self.kind = _kind(rule)
        self.sub: tuple[RulePlan, ...] = plans(rule.build) if rule.build is not None else ()
        self.function: Function = NAMES[rule.transform or "string"].function
        #: A transform sees the rule's table and params in a context of its own.
        self.narrow = bool(rule.params or rule.table)
        self.table = rule.table
        self.params = rule.params
        self.defaults = tuple(rule.defaults.items())
        self.requires: tuple[Path, ...] = tuple(parse_path(p) for p in rule.requires)


def plans(rules: list[Rule]) -> tuple[RulePlan, ...]:
    """Compile ``rules`` in order."""
    return tuple(RulePlan(rule) for rule in rules)


def _reads_component(rule: Rule) -> bool:
    """Whether the rule reads one component of the current value, and nothing else."""
    return (
        rule.segment is None
        and rule.field is None
        and rule.component is not None
        and not rule.components
    )


def empty_component(value: Repetition | None, component: tuple[int, int | None]) -> bool:
    """Whether ``value`` has nothing in that component (subcomponent), as a read would find."""
    if value is None:
        return True
    number, sub = component
    if number > len(value):
        return True
    subs = value[number - 1]
    if sub is None:
        return not any(subs)
    return sub > len(subs) or not subs[sub - 1]


def _kind(rule: Rule) -> int:
    if rule.build is not None:
        return BUILD
    if rule.datatype is not None:
        return DATATYPE
    if rule.resource is not None:
        return RESOURCE
    if rule.reference is not None:
        return REFERENCE
    if rule.map is not None or rule.map_coding is not None:
        return MAP
    return TRANSFORM


def _source(rule: Rule) -> Source:
    """The non-empty values a rule converts: read from its locator, else the current value."""
    if rule.has_source:
        number = rule.plain_field
        if number is not None:
            return lambda ctx: ctx.segment.valued(number)
        read = rule.reader
        return lambda ctx: [rep for rep in read(ctx) if not is_empty(rep)]
    keep_empty = rule.build is not None
    transform = NAMES.get(rule.transform or "")
    without_value = rule.build is not None or (transform is not None and transform.element_only)

    def current(ctx: Context) -> list[Repetition]:
        value = ctx.value
        if value is not None:
            return [] if not keep_empty and is_empty(value) else [value]
        return [[]] if without_value else []

    return current

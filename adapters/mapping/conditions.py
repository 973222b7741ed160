"""The fixed vocabulary of rule conditions; mapping files name them, never write code.

- ``valued``/``empty``: a located v2 value has (no) content;
- ``equals``/``in``/``not_in``: its first leaf is (not) one of the given codes;
- ``trigger_in``: MSH-9.2 is one of the given events;
- ``unset``: a path of the element being built has no value yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.mapping import paths
from adapters.mapping.spec import Condition, Locator
from adapters.mapping.values import Context, is_empty, read, text


def holds(condition: Condition, ctx: Context) -> bool:
    if condition.valued is not None:
        return any(not is_empty(rep) for rep in read(condition.valued, ctx))
    if condition.empty is not None:
        return all(is_empty(rep) for rep in read(condition.empty, ctx))
    if condition.equals is not None:
        return _first(condition.equals, ctx) == condition.equals.value
    if condition.in_ is not None:
        return _first(condition.in_, ctx) in condition.in_.values
    if condition.not_in is not None:
        return _first(condition.not_in, ctx) not in condition.not_in.values
    if condition.trigger_in is not None:
        return ctx.index.message.header.trigger_event in condition.trigger_in
    if condition.unset is not None:
        return not paths.is_set(paths.get(ctx.element, paths.parse_path(condition.unset)))
    raise AssertionError("a validated Condition names one predicate")


def holds_all(conditions: Sequence[Condition], ctx: Context) -> bool:
    return all(holds(c, ctx) for c in conditions)


def _first(locator: Locator, ctx: Context) -> str:
    if locator.segment is None and locator.field is not None and not locator.components:
        return ctx.segment.value(
            locator.field, locator.component or 1, locator.subcomponent or 1
        ).strip()
    reps = read(locator, ctx)
    return text(reps[0]).strip() if reps else ""

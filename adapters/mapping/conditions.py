"""The fixed vocabulary of rule conditions; mapping files name them, never write code.

- ``valued``/``empty``: a located v2 value has (no) content;
- ``equals``/``in``/``not_in``: its first leaf is (not) one of the given codes;
- ``trigger_in``: MSH-9.2 is one of the given events;
- ``unset``: a path of the element being built has no value yet.

``check_all`` compiles a list of conditions into one function once per mapping, so that
evaluating it per segment takes no decisions about the condition's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from adapters.mapping import paths
from adapters.mapping.spec import Condition, Locator
from adapters.mapping.values import Context, is_empty, text

Check = Callable[[Context], bool]


def check_all(conditions: Sequence[Condition]) -> Check | None:
    """All ``conditions`` as one function; None when there are none (nothing to test)."""
    checks = tuple(check(c) for c in conditions)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def every(ctx: Context) -> bool:
        return all(one(ctx) for one in checks)

    return every


def check(condition: Condition) -> Check:
    """One condition as a function of the context."""
    if condition.valued is not None:
        return _valued(condition.valued)
    if condition.empty is not None:
        return _empty(condition.empty)
    if condition.equals is not None:
        first, value = _first(condition.equals), condition.equals.value
        return lambda ctx: first(ctx) == value
    if condition.in_ is not None:
        first, values = _first(condition.in_), frozenset(condition.in_.values)
        return lambda ctx: first(ctx) in values
    if condition.not_in is not None:
        first, values = _first(condition.not_in), frozenset(condition.not_in.values)
        return lambda ctx: first(ctx) not in values
    if condition.trigger_in is not None:
        events = frozenset(condition.trigger_in)
        return lambda ctx: ctx.index.message.header.trigger_event in events
    if condition.unset is not None:
        path = paths.parse_path(condition.unset)
        return lambda ctx: not paths.is_set(paths.get(ctx.element, path))
    raise AssertionError("a validated Condition names one predicate")


def _valued(locator: Locator) -> Check:
    read = locator.reader

    def valued(ctx: Context) -> bool:
        return any(not is_empty(rep) for rep in read(ctx))

    return valued


def _empty(locator: Locator) -> Check:
    read = locator.reader

    def empty(ctx: Context) -> bool:
        return all(is_empty(rep) for rep in read(ctx))

    return empty


def _first(locator: Locator) -> Callable[[Context], str]:
    """The first leaf the locator reads, stripped ("" when there is none)."""
    if locator.segment is None and locator.field is not None and not locator.components:
        number, component = locator.field, locator.component or 1
        subcomponent = locator.subcomponent or 1
        return lambda ctx: ctx.segment.value(number, component, subcomponent).strip()
    read = locator.reader

    def first(ctx: Context) -> str:
        reps = read(ctx)
        return text(reps[0]).strip() if reps else ""

    return first

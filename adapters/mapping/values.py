"""Reading v2 values for the engine: locators, occurrence selection and the evaluation context.

Every read returns repetitions in one shape, ``list[list[str]]`` (components of
subcomponents), whether it addressed a field, a component (its subcomponents become the
components, so an HD inside a CX reads like an HD field) or a slice of components.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from adapters.hl7v2.parse import Message, Repetition, Segment
from adapters.mapping.spec import Locator, Select

T = TypeVar("T")


class MessageIndex:
    """A parsed message with its segments grouped by name (built once per conversion)."""

    __slots__ = ("by_name", "message", "segments")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.segments = message.segments
        self.by_name: dict[str, list[Segment]] = {}
        for segment in message.segments:
            self.by_name.setdefault(segment.name, []).append(segment)


class Context:
    """What a rule sees: the segment being mapped, the current value, the element being built.

    ``where`` names the segment for messages (e.g. "OBX[3]").
    """

    __slots__ = ("element", "index", "params", "segment", "table", "value", "where")

    def __init__(
        self,
        index: MessageIndex,
        segment: Segment,
        value: Repetition | None = None,
        element: dict[str, Any] | None = None,
        table: str | None = None,
        params: dict[str, Any] | None = None,
        where: str = "",
    ) -> None:
        self.index = index
        self.segment = segment
        self.value = value
        self.element = element if element is not None else {}
        self.table = table
        self.params = params if params is not None else {}
        self.where = where

    def child(
        self,
        value: Repetition | None,
        element: dict[str, Any],
        table: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Context:
        return Context(
            self.index,
            self.segment,
            value,
            element,
            table or self.table,
            params if params is not None else self.params,
            self.where,
        )


def is_empty(rep: Repetition) -> bool:
    return not any(sub for comp in rep for sub in comp)


def text(rep: Repetition) -> str:
    """The first leaf of a value (its code, number or string)."""
    return rep[0][0] if rep and rep[0] else ""


def leaves(rep: Repetition) -> list[str]:
    """The first subcomponent of each component (an HD or EI read flat)."""
    return [comp[0] if comp else "" for comp in rep]


def read(locator: Locator, ctx: Context) -> list[Repetition]:
    """The values ``locator`` addresses in ``ctx``, in the one shape above."""
    if locator.segment is not None:
        found = select_segments(ctx, locator.segment, locator.select, first=True)
        reps = found[0].field(locator.field or 0) if found else []
    elif locator.field is not None:
        reps = ctx.segment.field(locator.field)
    elif ctx.value is not None:
        reps = [ctx.value]
    else:
        return []
    if locator.components:
        wanted = locator.components
        return [[rep[i - 1] if i <= len(rep) else [""] for i in wanted] for rep in reps]
    if locator.component is not None:
        n = locator.component
        out = []
        for rep in reps:
            if n > len(rep):
                continue
            subs = rep[n - 1]
            if locator.subcomponent is not None:
                m = locator.subcomponent
                out.append([[subs[m - 1] if m <= len(subs) else ""]])
            else:
                out.append([[sub] for sub in subs])
        return out
    return reps


def select_segments(
    ctx: Context, name: str, select: Select | None, first: bool = False
) -> list[Segment]:
    """Occurrences of segment ``name`` chosen by ``select`` relative to ``ctx.segment``."""
    candidates = ctx.index.by_name.get(name, [])
    if not candidates:
        return []
    return pick(
        candidates,
        lambda s: s.index,
        lambda s: s,
        ctx,
        select or Select(),
        first,
    )


def pick(
    candidates: Sequence[T],
    position: Callable[[T], int],
    segment_of: Callable[[T], Segment],
    ctx: Context,
    select: Select,
    first: bool = False,
) -> list[T]:
    """Apply a Select to candidates ordered by position in the message."""
    from adapters.mapping.conditions import holds_all

    here = ctx.segment.index
    segments = ctx.index.segments

    def matches(item: T) -> bool:
        if not select.when:
            return True
        probe = Context(ctx.index, segment_of(item), where=ctx.where)
        return holds_all(select.when, probe)

    def crosses(start: int, stop: int) -> bool:
        return any(segments[i].name in select.until for i in range(start, stop))

    scope = select.scope
    if scope == "same":
        return [c for c in candidates if position(c) == here and matches(c)][:1]
    if scope == "preceding":
        for item in reversed(candidates):
            at = position(item)
            if at >= here:
                continue
            if select.until and crosses(at + 1, here):
                return []
            if matches(item):
                return [item]
        return []
    if scope == "following":
        out = []
        for item in candidates:
            at = position(item)
            if at <= here:
                continue
            if select.until and crosses(here + 1, at):
                break
            if matches(item):
                out.append(item)
                if first:
                    break
        return out
    chosen = [c for c in candidates if matches(c)]
    if scope == "message" or first:
        return chosen[:1]
    return chosen

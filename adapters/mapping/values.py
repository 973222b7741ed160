"""Reading v2 values for the engine: locators, occurrence selection and the evaluation context.

Every read returns repetitions in one shape, ``list[list[str]]`` (components of
subcomponents), whether it addressed a field, a component (its subcomponents become the
components, so an HD inside a CX reads like an HD field) or a slice of components.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from adapters.hl7v2.parse import Message, Repetition, Segment, has_value
from adapters.mapping.spec import Locator, Select

T = TypeVar("T")


class MessageIndex:
    """A parsed message with its segments grouped by name (built once per conversion)."""

    __slots__ = ("by_name", "memo", "message", "segments")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.segments = message.segments
        #: Lookups that depend on the message alone (see ``finder``), made once.
        self.memo: dict[Any, Any] = {}
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
        new = _blank(Context)  # made often: without __init__'s defaulting
        new.index = self.index
        new.segment = self.segment
        new.value = value
        new.element = element
        new.table = table or self.table
        new.params = params if params is not None else self.params
        new.where = self.where
        return new


_blank = object.__new__


def is_empty(rep: Repetition) -> bool:
    return not has_value(rep)


def text(rep: Repetition) -> str:
    """The first leaf of a value (its code, number or string)."""
    return rep[0][0] if rep and rep[0] else ""


def leaves(rep: Repetition) -> list[str]:
    """The first subcomponent of each component (an HD or EI read flat)."""
    return [comp[0] if comp else "" for comp in rep]


Reader = Callable[[Context], list[Repetition]]
Finder = Callable[[Context], Segment | None]


def reader(locator: Locator) -> Reader:
    """``read`` specialised to one locator: its branches are taken once, when it is compiled."""
    source = _source(locator)
    if locator.components:
        wanted = tuple(locator.components)

        def composite(ctx: Context) -> list[Repetition]:
            return [[rep[i - 1] if i <= len(rep) else [""] for i in wanted] for rep in source(ctx)]

        return composite
    n = locator.component
    if n is None:
        return source
    m = locator.subcomponent
    if m is None:

        def component(ctx: Context) -> list[Repetition]:
            return [[[sub] for sub in rep[n - 1]] for rep in source(ctx) if n <= len(rep)]

        return component

    def subcomponent(ctx: Context) -> list[Repetition]:
        out = []
        for rep in source(ctx):
            if n <= len(rep):
                subs = rep[n - 1]
                out.append([[subs[m - 1] if m <= len(subs) else ""]])
        return out

    return subcomponent


def _source(locator: Locator) -> Reader:
    """The repetitions a locator starts from, before choosing components."""
    if locator.segment is not None:
        find = finder(locator.segment, locator.select)
        number = locator.field or 0

        def other(ctx: Context) -> list[Repetition]:
            found = find(ctx)
            return found.field(number) if found is not None else []

        return other
    if locator.field is not None:
        own = locator.field

        def field(ctx: Context) -> list[Repetition]:
            return ctx.segment.field(own)

        return field

    def current(ctx: Context) -> list[Repetition]:
        value = ctx.value
        return [value] if value is not None else []

    return current


def finder(name: str, select: Select | None) -> Finder:
    """The first occurrence of ``name`` that ``select`` chooses, remembered per message.

    A choice relative to the segment being mapped is remembered per segment; any other
    depends on the message alone (``when`` is evaluated on the candidate). Locators that
    choose alike without conditions share what was found.
    """
    chosen = select or Select()
    relative = chosen.scope in ("preceding", "following", "same")
    token: object = object() if chosen.when else (name, chosen.scope, tuple(chosen.until))

    def find(ctx: Context) -> Segment | None:
        memo = ctx.index.memo
        key = (token, ctx.segment.index) if relative else token
        try:
            found: Segment | None = memo[key]
        except KeyError:
            segments = select_segments(ctx, name, chosen, first=True)
            found = memo[key] = segments[0] if segments else None
        return found

    return find


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
    here = ctx.segment.index
    segments = ctx.index.segments
    check = select.check
    scope = select.scope
    if check is None and scope in ("message", "all"):  # the position does not matter
        return list(candidates[:1]) if scope == "message" or first else list(candidates)

    def matches(item: T) -> bool:
        if check is None:
            return True
        return check(Context(ctx.index, segment_of(item), where=ctx.where))

    def crosses(start: int, stop: int) -> bool:
        return any(segments[i].name in select.until for i in range(start, stop))

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

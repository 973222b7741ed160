"""Parsing a FHIR search query into a ``SearchRequest``: knows neither HTTP nor SQL.

http://hl7.org/fhir/R4/search.html — AND across repeated parameters, OR across commas,
``\\,`` ``\\$`` ``\\|`` escapes, modifiers, prefixes, chains, ``_has`` and result parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Parameters that shape the result rather than select resources.
RESULT_PARAMS = frozenset(
    {
        "_count",
        "_sort",
        "_include",
        "_revinclude",
        "_total",
        "_summary",
        "_elements",
        "_contained",
        "_containedType",
        "_format",
        "_pretty",
        "_page",
        "_getpages",
        "_type",
    }
)

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


@dataclass(frozen=True, slots=True)
class Link:
    """One step of a chain: ``subject:Patient.name`` is Link("subject", "Patient") then name."""

    code: str
    target_type: str | None


@dataclass(frozen=True, slots=True)
class Has:
    """Reverse chain ``_has:Observation:patient:code=…``."""

    resource_type: str
    reference_param: str


@dataclass(frozen=True, slots=True)
class Filter:
    """One query parameter: its values are ORed; several Filters are ANDed."""

    code: str
    modifier: str | None
    values: tuple[str, ...]
    chain: tuple[Link, ...] = ()
    has: tuple[Has, ...] = ()
    raw_name: str = ""


@dataclass(frozen=True, slots=True)
class Include:
    source_type: str
    param: str  # "*" for all reference parameters
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass
class SearchRequest:
    resource_types: tuple[str, ...]
    filters: list[Filter] = field(default_factory=list)
    count: int | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (code, descending)
    includes: list[Include] = field(default_factory=list)
    total: str | None = None
    summary: str | None = None
    elements: tuple[str, ...] = ()
    contained: str | None = None
    contained_type: str | None = None
    page_token: str | None = None
    problems: list[str] = field(default_factory=list)


def split_values(text: str) -> tuple[str, ...]:
    """Split on unescaped commas; ``\\,`` stays a comma inside a value (escape kept for later)."""
    return tuple(split_unescaped(text, ","))


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split on an unescaped ``sep`` (``,`` ``|`` ``$``), keeping escapes for ``unescape``."""
    if "\\" not in text:  # the usual case: nothing escaped
        return text.split(sep)
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    if escaped:
        out.append("\\")
    return "".join(out)


def split_prefix(value: str) -> tuple[str, str]:
    """``ge2026-01-01`` → ("ge", "2026-01-01"); no prefix means ``eq``."""
    if len(value) > 2 and value[:2] in PREFIXES and not value[2].isalpha():
        return value[:2], value[2:]
    return "eq", value


def _parse_name(name: str) -> tuple[str, str | None, tuple[Link, ...], tuple[Has, ...]]:
    has: list[Has] = []
    while name.startswith("_has:"):
        parts = name.split(":", 3)
        if len(parts) < 4:
            raise ValueError(f"'{name}': _has needs _has:Type:reference:parameter")
        has.append(Has(parts[1], parts[2]))
        name = parts[3]
    head, *rest = name.split(".")
    links: list[Link] = []
    for part in rest:
        links.append(_link(part))
    code, _, mod = head.partition(":")
    modifier: str | None = mod or None
    if rest:
        # the modifier of a chained link names its target type
        links.insert(0, Link(code, modifier))
        last = links.pop()
        code, modifier = last.code, last.target_type
    return code, modifier, tuple(links), tuple(has)


def _link(part: str) -> Link:
    code, _, target = part.partition(":")
    return Link(code, target or None)


def _include(value: str, reverse: bool, iterate: bool) -> Include:
    parts = value.split(":")
    if value == "*":
        return Include("*", "*", None, iterate, reverse)
    if len(parts) < 2 or len(parts) > 3:
        raise ValueError(f"'{value}' is not Type:parameter[:targetType]")
    return Include(parts[0], parts[1], parts[2] if len(parts) == 3 else None, iterate, reverse)


#: The characters FHIR's string type excludes (tab, CR and LF are allowed).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")


def has_control(text: str) -> bool:
    """A search value no stored value can match: FHIR strings exclude these characters, and
    PostgreSQL refuses NUL in text (the query would fail, not just find nothing)."""
    return _CONTROL.search(text) is not None


def parse(resource_types: Iterable[str], pairs: Iterable[tuple[str, str]]) -> SearchRequest:
    """Parse query pairs; malformed result parameters are recorded in ``problems``."""
    req = SearchRequest(tuple(resource_types))
    for name, value in pairs:
        try:
            _apply(req, name, value)
        except ValueError as exc:
            req.problems.append(f"Parameter '{name}': {exc}")
    return req


def _apply(req: SearchRequest, name: str, value: str) -> None:
    if has_control(name) or has_control(value):
        raise ValueError("contains a control character")
    base, _, modifier = name.partition(":")
    if base in RESULT_PARAMS:
        _apply_result(req, base, modifier, value)
        return
    code, mod, chain, has = _parse_name(name)
    req.filters.append(Filter(code, mod, split_values(value), chain, has, name))


def _apply_result(req: SearchRequest, base: str, modifier: str, value: str) -> None:
    if base == "_count":
        if not value.isdigit():
            raise ValueError(f"'{value}' is not a non-negative integer")
        req.count = int(value)
    elif base == "_sort":
        for key in value.split(","):
            key = key.strip()
            if key:
                req.sort.append((key.lstrip("-"), key.startswith("-")))
    elif base in ("_include", "_revinclude"):
        if modifier not in ("", "iterate", "recurse"):
            raise ValueError(f"unknown modifier ':{modifier}'")
        req.includes.append(_include(value, base == "_revinclude", bool(modifier)))
    elif base == "_total":
        if value not in ("none", "estimate", "accurate"):
            raise ValueError(f"'{value}' is not none, estimate or accurate")
        req.total = value
    elif base == "_summary":
        if value not in ("true", "false", "text", "data", "count"):
            raise ValueError(f"'{value}' is not a _summary mode")
        req.summary = value
    elif base == "_elements":
        req.elements += tuple(e.strip() for e in value.split(",") if e.strip())
    elif base == "_contained":
        if value not in ("true", "false", "both"):
            raise ValueError(f"'{value}' is not true, false or both")
        req.contained = value
    elif base == "_containedType":
        if value not in ("container", "contained"):
            raise ValueError(f"'{value}' is not container or contained")
        req.contained_type = value
    elif base in ("_page", "_getpages"):
        req.page_token = value

"""Write-time extraction of search index values: one typed row per value, ready to store.

http://hl7.org/fhir/R4/search.html. For every indexed parameter of the resource's type, the
compiled expression's branches are evaluated and each value is converted by its static FHIR
type (chosen once per branch, not per value):

* string: ``normalized`` (NFKD, combining marks stripped, casefolded: ``Müller`` -> ``muller``,
  ``ß`` -> ``ss``) for case/accent-insensitive starts-with, and the ``exact`` text;
  HumanName and Address expand to their parts;
* token: (system, code, normalized display/text for ``:text``) from Coding, CodeableConcept
  (each coding, then a row for its text), Identifier (one row per type coding, for
  ``:of-type``), ContactPoint (ContactPoint.system as the system, as HAPI does) and primitives;
* date: [low, high) in UTC covering the value's precision; dates and times without a zone
  are taken as UTC (the spec leaves their zone unknown); open Period ends are
  :data:`MIN_DATE`/:data:`MAX_DATE`; a Timing covers its events and ``repeat.boundsPeriod``;
* number/quantity: the value and its implicit precision range (``100`` -> [99.5, 100.5));
  quantity comparators open the range; Range gives its bounds; Money uses ISO 4217;
* reference: type, id, version, absolute url, identifier; contained ``#id`` is skipped;
* uri, composite (every combination of its components' values per item) and ``near``
  (Location.position).

Rows are deduplicated. Unconvertible values (wrong JSON type, unparseable dates) are
skipped: validation reports them, indexing must not fail.

Per type, a plan made once turns each branch and its converter into one function (plain
paths and ``where()`` on them are walked and converted in one loop); per set of keys a
resource has, the plan keeps only the functions that can find something, so a write runs
little more than the conversions of its values.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, NamedTuple

from fhir_server.fhir import structure
from fhir_server.search.fhirpath import Branch, CompiledPath, Fn, Keep, split_reference
from fhir_server.search.registry import Registry, SearchParam, default_registry

__all__ = [
    "MAX_DATE",
    "MIN_DATE",
    "CompositeValue",
    "DateValue",
    "IndexValue",
    "IndexValues",
    "NumberValue",
    "PositionValue",
    "QuantityValue",
    "ReferenceValue",
    "StringValue",
    "TokenValue",
    "UriValue",
    "date_range",
    "extract",
    "normalize",
    "number_range",
]

MIN_DATE = datetime.min.replace(tzinfo=UTC)
MAX_DATE = datetime.max.replace(tzinfo=UTC)
UCUM = "http://unitsofmeasure.org"
ISO_4217 = "urn:iso:std:iso:4217"


# ------------------------------------------------------------------------------- row types


class StringValue(NamedTuple):
    param: str
    normalized: str  # for case/accent-insensitive starts-with and :contains
    exact: str  # for :exact


class TokenValue(NamedTuple):
    param: str
    system: str | None
    code: str | None
    text: str | None = None  # normalized display / CodeableConcept.text / Identifier.type.text
    type_system: str | None = None  # Identifier.type coding, for :of-type
    type_code: str | None = None


class DateValue(NamedTuple):
    param: str
    low: datetime  # inclusive, UTC
    high: datetime  # exclusive, UTC (MAX_DATE: open end)


class NumberValue(NamedTuple):
    param: str
    value: Decimal | None  # None for a Range
    low: Decimal | None  # inclusive; None: unbounded
    high: Decimal | None  # exclusive; None: unbounded


class QuantityValue(NamedTuple):
    param: str
    value: Decimal | None  # None for a Range
    low: Decimal | None
    high: Decimal | None
    system: str | None
    code: str | None
    unit: str | None


#: ``target_type`` of a reference to a contained resource (``#id``; ``target_id`` is the id):
#: no resource has this type, so only chains into contained resources look for it.
CONTAINED_TARGET = "#"


class ReferenceValue(NamedTuple):
    param: str
    target_type: str | None
    target_id: str | None
    version: str | None = None
    url: str | None = None  # absolute (not on this server), urn:uuid:..., canonical
    identifier_system: str | None = None
    identifier_value: str | None = None


class UriValue(NamedTuple):
    param: str
    uri: str


class PositionValue(NamedTuple):
    """Location.position for the special ``near`` parameter."""

    param: str
    latitude: Decimal
    longitude: Decimal


IndexValue = (
    StringValue
    | TokenValue
    | DateValue
    | NumberValue
    | QuantityValue
    | ReferenceValue
    | UriValue
    | PositionValue
)


class CompositeValue(NamedTuple):
    """One combination of component values (each carries its component's param code)."""

    param: str
    components: tuple[IndexValue, ...]


@dataclass(slots=True)
class IndexValues:
    """All index rows of one resource, by parameter type."""

    resource_type: str
    strings: list[StringValue] = field(default_factory=list)
    tokens: list[TokenValue] = field(default_factory=list)
    dates: list[DateValue] = field(default_factory=list)
    numbers: list[NumberValue] = field(default_factory=list)
    quantities: list[QuantityValue] = field(default_factory=list)
    references: list[ReferenceValue] = field(default_factory=list)
    uris: list[UriValue] = field(default_factory=list)
    composites: list[CompositeValue] = field(default_factory=list)
    specials: list[PositionValue] = field(default_factory=list)

    def rows(self) -> Iterator[IndexValue | CompositeValue]:
        """Every row, all types."""
        yield from self.strings
        yield from self.tokens
        yield from self.dates
        yield from self.numbers
        yield from self.quantities
        yield from self.references
        yield from self.uris
        yield from self.composites
        yield from self.specials

    def params(self) -> frozenset[str]:
        """Codes of the parameters that have at least one value (the rest are :missing)."""
        return frozenset(row.param for row in self.rows())

    def __len__(self) -> int:
        return sum(1 for _ in self.rows())


# ------------------------------------------------------------------------------ primitives


def normalize(text: str) -> str:
    """Case- and accent-insensitive form of a string (``Müller`` and ``MULLER`` -> ``muller``).

    The query side must apply the same function to search values.
    """
    if text.isascii():
        return text.lower()
    return _fold(text)


@lru_cache(maxsize=4096)
def _fold(text: str) -> str:
    """The slow path of :func:`normalize`, cached: a resource repeats its names (``name``,
    ``family``, ``phonetic``...) and real data repeats places and display texts."""
    folded = unicodedata.normalize("NFKD", text).casefold()
    return "".join(c for c in folded if not unicodedata.combining(c))


_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@lru_cache(maxsize=4096)
def date_range(text: str) -> tuple[datetime, datetime] | None:
    """[low, high) in UTC covered by a FHIR date/dateTime/instant at its precision.

    ``2026`` covers the year, ``2026-01`` the month, ``2026-01-05T10:00:00.5+01:00`` a tenth
    of a second. Values without a zone are taken as UTC. None if the text is not a date.
    """
    match = _DATE.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        if month is None:
            low = datetime(int(year), 1, 1, tzinfo=UTC)
            return low, _add_months(low, 12)
        if day is None:
            low = datetime(int(year), int(month), 1, tzinfo=UTC)
            return low, _add_months(low, 1)
        tz = UTC if zone in (None, "Z") else _offset(zone)
        if hour is None:
            low = datetime(int(year), int(month), int(day), tzinfo=UTC)
            return low, _shift(low, timedelta(days=1))
        step = timedelta(minutes=1)
        seconds, micros = 0, 0
        if second is not None:
            seconds, step = min(int(second), 59), timedelta(seconds=1)
        if fraction is not None:
            digits = min(len(fraction), 6)
            micros = int(fraction[:6].ljust(6, "0"))
            step = timedelta(microseconds=10 ** (6 - digits))
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), seconds, micros, tzinfo=tz
        )
        low = local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return low, _shift(low, step)


def _offset(zone: str) -> timezone:
    sign = -1 if zone[0] == "-" else 1
    return timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))


def _add_months(low: datetime, months: int) -> datetime:
    total = low.month - 1 + months
    year = low.year + total // 12
    return MAX_DATE if year > 9999 else low.replace(year=year, month=total % 12 + 1)


def _shift(low: datetime, step: timedelta) -> datetime:
    try:
        return low + step
    except OverflowError:
        return MAX_DATE


def number_range(value: Decimal) -> tuple[Decimal, Decimal]:
    """[low, high) implied by a decimal's written precision: ``100`` -> [99.5, 100.5)."""
    exponent = value.as_tuple().exponent
    half = Decimal(5).scaleb((exponent if isinstance(exponent, int) else 0) - 1)
    return value - half, value + half


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        try:
            return Decimal(repr(value))
        except InvalidOperation:
            return None
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else _NO_DICT


_NO_DICT: Mapping[str, Any] = {}

#: ``_new(Row, (every field))`` builds a row without the Python-level ``__new__`` of a
#: NamedTuple (about half the cost): converters make one per value.
_new = tuple.__new__

Converter = Callable[[str, Any, list[Any]], None]
"""``(param code, value, rows)``: appends the rows a value yields."""


# ---------------------------------------------------------------------------------- string


def _string(code: str, value: Any, out: list[Any]) -> None:
    if isinstance(value, str) and value:
        out.append(_new(StringValue, (code, normalize(value), value)))


def _parts(single: tuple[str, ...], repeated: tuple[str, ...]) -> Converter:
    def convert(code: str, value: Any, out: list[Any]) -> None:
        if not isinstance(value, dict):
            return
        for key in single:
            item = value.get(key)
            if isinstance(item, str) and item:  # as _string, inline: most keys are absent
                out.append(_new(StringValue, (code, normalize(item), item)))
        for key in repeated:
            items = value.get(key)
            if isinstance(items, list):
                for item in items:
                    _string(code, item, out)

    return convert


_human_name = _parts(("family", "text"), ("given", "prefix", "suffix"))
_address = _parts(("city", "district", "state", "postalCode", "country", "text"), ("line",))


# ----------------------------------------------------------------------------------- token


def _text(value: Any) -> str | None:
    return normalize(value) if isinstance(value, str) and value else None


def _coding(code: str, value: Any, out: list[Any]) -> None:
    if not isinstance(value, dict):
        return
    token, display = value.get("code"), value.get("display")
    token = token if isinstance(token, str) and token else None
    display = normalize(display) if isinstance(display, str) and display else None
    if token is not None or display is not None:
        system = value.get("system")
        system = system if isinstance(system, str) and system else None
        out.append(_new(TokenValue, (code, system, token, display, None, None)))


def _concept(code: str, value: Any, out: list[Any]) -> None:
    if not isinstance(value, dict):
        return
    codings = value.get("coding")
    if codings:
        for coding in codings:
            _coding(code, coding, out)
    text = value.get("text")
    if isinstance(text, str) and text:
        out.append(_new(TokenValue, (code, None, None, normalize(text), None, None)))


def _identifier(code: str, value: Any, out: list[Any]) -> None:
    data = _dict(value)
    system, token = _str(data.get("system")), _str(data.get("value"))
    if system is None and token is None:
        return
    kind = _dict(data.get("type"))
    text = _text(kind.get("text"))
    typed = False
    for coding in kind.get("coding") or ():
        coding = _dict(coding)
        type_code = _str(coding.get("code"))
        if type_code is not None:
            typed = True
            type_system = _str(coding.get("system"))
            out.append(_new(TokenValue, (code, system, token, text, type_system, type_code)))
    if not typed:
        out.append(_new(TokenValue, (code, system, token, text, None, None)))


def _contact_point(code: str, value: Any, out: list[Any]) -> None:
    data = _dict(value)
    token = _str(data.get("value"))
    if token is not None:
        out.append(_new(TokenValue, (code, _str(data.get("system")), token, None, None, None)))


def _token_primitive(code: str, value: Any, out: list[Any]) -> None:
    if type(value) is str:  # the usual case first
        if value:
            out.append(_new(TokenValue, (code, None, value, None, None, None)))
    elif isinstance(value, bool):
        out.append(TokenValue(code, None, "true" if value else "false"))
    elif isinstance(value, str) and value:
        out.append(TokenValue(code, None, value))
    elif isinstance(value, (int, Decimal)):
        out.append(TokenValue(code, None, str(value)))


# ------------------------------------------------------------------------------------ date


def _date(code: str, value: Any, out: list[Any]) -> None:
    found = date_range(value) if isinstance(value, str) else None
    if found is not None:
        out.append(_new(DateValue, (code, found[0], found[1])))


def _bounds(start: Any, end: Any) -> tuple[datetime, datetime] | None:
    if start is None and end is None:
        return None
    low = date_range(start) if isinstance(start, str) else None
    high = date_range(end) if isinstance(end, str) else None
    return (low[0] if low else MIN_DATE), (high[1] if high else MAX_DATE)


def _period(code: str, value: Any, out: list[Any]) -> None:
    data = _dict(value)
    found = _bounds(data.get("start"), data.get("end"))
    if found is not None:
        out.append(_new(DateValue, (code, found[0], found[1])))


def _timing(code: str, value: Any, out: list[Any]) -> None:
    """A Timing counts from its first event or bounds start to its last event or bounds end."""
    data = _dict(value)
    ranges = [date_range(e) for e in data.get("event") or () if isinstance(e, str)]
    bounds = _dict(_dict(data.get("repeat")).get("boundsPeriod"))
    found = _bounds(bounds.get("start"), bounds.get("end")) if bounds else None
    spans = [r for r in [*ranges, found] if r is not None]
    if spans:
        out.append(DateValue(code, min(s[0] for s in spans), max(s[1] for s in spans)))


# -------------------------------------------------------------------------- number/quantity


def _number(code: str, value: Any, out: list[Any]) -> None:
    number = _decimal(value)
    if number is not None:
        out.append(NumberValue(code, number, *number_range(number)))


def _range_bounds(value: Any) -> tuple[Decimal | None, Decimal | None, Mapping[str, Any]]:
    data = _dict(value)
    low_q, high_q = _dict(data.get("low")), _dict(data.get("high"))
    low, high = _decimal(low_q.get("value")), _decimal(high_q.get("value"))
    return (
        number_range(low)[0] if low is not None else None,
        number_range(high)[1] if high is not None else None,
        low_q or high_q,
    )


def _number_range(code: str, value: Any, out: list[Any]) -> None:
    low, high, _ = _range_bounds(value)
    if low is not None or high is not None:
        out.append(NumberValue(code, None, low, high))


def _quantity_number(code: str, value: Any, out: list[Any]) -> None:
    _number(code, _dict(value).get("value"), out)


def _quantity(code: str, value: Any, out: list[Any]) -> None:
    data = _dict(value)
    number = _decimal(data.get("value"))
    if number is None:
        return
    low: Decimal | None
    high: Decimal | None
    low, high = number_range(number)
    comparator = data.get("comparator")
    if comparator in ("<", "<="):
        low = None
    elif comparator in (">", ">="):
        high = None
    unit = _str(data.get("unit"))
    system, token = _str(data.get("system")), _str(data.get("code"))
    out.append(_new(QuantityValue, (code, number, low, high, system, token, unit)))


def _money(code: str, value: Any, out: list[Any]) -> None:
    data = _dict(value)
    number = _decimal(data.get("value"))
    if number is not None:
        currency = _str(data.get("currency"))
        system = ISO_4217 if currency else None
        out.append(QuantityValue(code, number, *number_range(number), system, currency, None))


def _quantity_range(code: str, value: Any, out: list[Any]) -> None:
    low, high, unit = _range_bounds(value)
    if low is not None or high is not None:
        system, token = _str(unit.get("system")), _str(unit.get("code"))
        out.append(QuantityValue(code, None, low, high, system, token, _str(unit.get("unit"))))


def _plain_quantity(code: str, value: Any, out: list[Any]) -> None:
    number = _decimal(value)
    if number is not None:
        out.append(QuantityValue(code, number, *number_range(number), None, None, None))


# ------------------------------------------------------------------------------- reference


def _reference(code: str, value: Any, out: list[Any]) -> None:
    if not isinstance(value, dict):
        return
    ref = value.get("reference")
    identifier = value.get("identifier")
    id_system = id_value = None
    if isinstance(identifier, dict):
        id_system, id_value = _str(identifier.get("system")), _str(identifier.get("value"))
    if isinstance(ref, str) and ref:
        parsed = split_reference(ref)
        if parsed is None:
            if ref.startswith("#") and len(ref) > 1:  # a contained resource: for chains
                contained = (code, CONTAINED_TARGET, ref[1:], None, None, None, None)
                out.append(_new(ReferenceValue, contained))
            return
        target = parsed.type or _declared_type(value)
        row = (code, target, parsed.id, parsed.version, parsed.url, id_system, id_value)
        out.append(_new(ReferenceValue, row))
    elif id_system is not None or id_value is not None:
        row = (code, _declared_type(value), None, None, None, id_system, id_value)
        out.append(_new(ReferenceValue, row))


def _declared_type(reference: Mapping[str, Any]) -> str | None:
    """``Reference.type`` (a type name or its URL) as a type name."""
    declared = _str(reference.get("type"))
    return declared.rsplit("/", 1)[-1] if declared else None


def _canonical(code: str, value: Any, out: list[Any]) -> None:
    """A canonical/uri reference: ``url|version``; type and id when it looks RESTful."""
    if not isinstance(value, str) or not value or value.startswith("#"):
        return
    url, _, version = value.partition("|")
    parsed = split_reference(url)
    target = parsed.type if parsed else None
    ident = parsed.id if parsed else None
    out.append(ReferenceValue(code, target, ident, version or None, url))


def _resource(code: str, value: Any, out: list[Any]) -> None:
    data = _dict(value)
    rtype, rid = _str(data.get("resourceType")), _str(data.get("id"))
    if rtype is not None and rid is not None:
        out.append(ReferenceValue(code, rtype, rid))


def _attachment(code: str, value: Any, out: list[Any]) -> None:
    _canonical(code, _dict(value).get("url"), out)


# ------------------------------------------------------------------------------ uri/special


def _uri(code: str, value: Any, out: list[Any]) -> None:
    if isinstance(value, str) and value:
        out.append(_new(UriValue, (code, value)))


def _position(code: str, value: Any, out: list[Any]) -> None:
    data = _dict(value)
    latitude, longitude = _decimal(data.get("latitude")), _decimal(data.get("longitude"))
    if latitude is not None and longitude is not None:
        out.append(PositionValue(code, latitude, longitude))


# ------------------------------------------------------------------------------- dispatch

_QUANTITIES = frozenset(
    {"Quantity", "Age", "Count", "Distance", "Duration", "SimpleQuantity", "MoneyQuantity"}
)
_URIS = frozenset({"uri", "url", "canonical", "oid", "uuid"})
_NUMBERS = frozenset({"decimal", "integer", "positiveInt", "unsignedInt"})
_BY_TYPE: dict[str, dict[str, Converter]] = {
    "string": {"HumanName": _human_name, "Address": _address},
    "token": {
        "Coding": _coding,
        "CodeableConcept": _concept,
        "Identifier": _identifier,
        "ContactPoint": _contact_point,
    },
    "date": {"date": _date, "dateTime": _date, "instant": _date, "Period": _period},
    "number": {"Range": _number_range, **dict.fromkeys(_NUMBERS, _number)},
    "quantity": {"Money": _money, "Range": _quantity_range},
    "reference": {"Reference": _reference, "Attachment": _attachment, "Resource": _resource},
    "uri": dict.fromkeys(_URIS | {"string", "code"}, _uri),
    "special": {"Location.position": _position},
}
_BY_TYPE["date"]["Timing"] = _timing
_BY_TYPE["quantity"] |= dict.fromkeys(_QUANTITIES, _quantity)
_BY_TYPE["quantity"] |= dict.fromkeys(_NUMBERS, _plain_quantity)
_BY_TYPE["number"] |= dict.fromkeys(_QUANTITIES, _quantity_number)
_BY_TYPE["reference"] |= dict.fromkeys(_URIS, _canonical)


@lru_cache(maxsize=1024)
def _converter(param_type: str, value_type: str) -> Converter | None:
    """How values of a FHIR type become rows of a parameter type (None: not indexable)."""
    found = _BY_TYPE.get(param_type, {}).get(value_type)
    if found is not None:
        return found
    primitive = value_type in structure.primitive_types() or value_type == "boolean"
    if param_type == "string" and primitive and value_type != "boolean":
        return _string
    if param_type == "token" and primitive:
        return _token_primitive
    if param_type == "reference" and value_type in structure.resource_types():
        return _resource
    return None


# --------------------------------------------------------------------------------- runners

Runner = Callable[[Any, Any, list[Any]], None]
"""``(focus, root resource, rows)``: evaluates one branch and appends its values' rows."""


def _runner(
    branch: Branch, code: str, convert: Converter, targets: frozenset[str] | None = None
) -> Runner:
    """A branch and its converter as one function, chosen once per plan.

    Most branches are plain paths (``code``, ``meta.tag``) or a path and a where()
    (``telecom.where(system='phone')``): those are walked and converted in one loop, without
    the intermediate list of values. Nulls are skipped there: no converter makes a row of one.
    """
    fn = branch.fn
    if targets is not None:
        return _targets_runner(fn, targets, code, convert)
    if branch.path is not None and len(branch.path) <= 2:
        return _path_runner(branch.path, code, convert)
    if branch.filtered is not None and len(branch.filtered[0]) == 1:
        (key,), keep = branch.filtered
        return _where_runner(key, keep, code, convert)

    def run(focus: Any, root: Any, out: list[Any]) -> None:
        for value in fn(focus, root):
            convert(code, value, out)

    return run


def _path_runner(path: tuple[str, ...], code: str, convert: Converter) -> Runner:
    """Up to two keys, flattening arrays at each step as FHIRPath navigation does."""
    if not path:
        return lambda focus, root, out: convert(code, focus, out)
    if len(path) == 1:
        key = path[0]

        def one(focus: Any, root: Any, out: list[Any]) -> None:
            value = focus.get(key) if isinstance(focus, dict) else None
            if isinstance(value, list):
                _convert_items(value, code, convert, out)
            elif value is not None:
                convert(code, value, out)

        return one
    first, second = path

    def two(focus: Any, root: Any, out: list[Any]) -> None:
        value = focus.get(first) if isinstance(focus, dict) else None
        if isinstance(value, dict):  # the usual case (``meta.tag``): no loop
            found = value.get(second)
            if isinstance(found, list):
                _convert_items(found, code, convert, out)
            elif found is not None:
                convert(code, found, out)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    found = item.get(second)
                    if isinstance(found, list):
                        _convert_items(found, code, convert, out)
                    elif found is not None:
                        convert(code, found, out)

    return two


def _convert_items(items: list[Any], code: str, convert: Converter, out: list[Any]) -> None:
    for item in items:
        if item is not None:
            convert(code, item, out)


def _where_runner(key: str, keep: Keep, code: str, convert: Converter) -> Runner:
    """The items of one key that ``keep`` accepts (``keep`` is pure: nulls need no test)."""

    def run(focus: Any, root: Any, out: list[Any]) -> None:
        value = focus.get(key) if isinstance(focus, dict) else None
        if value is None:
            return
        for item in value if isinstance(value, list) else (value,):
            if item is not None and keep(item, root):
                convert(code, item, out)

    return run


def _targets_runner(fn: Fn, targets: frozenset[str], code: str, convert: Converter) -> Runner:
    """An embedded resource (``Bundle.entry[0].resource``) only counts if it is a target."""

    def run(focus: Any, root: Any, out: list[Any]) -> None:
        for value in fn(focus, root):
            if _dict(value).get("resourceType") in targets:
                convert(code, value, out)

    return run


# ------------------------------------------------------------------------------- extract


#: Order of the row lists of :class:`IndexValues` in a plan (``_Step.slot``).
_BUCKETS = ("string", "token", "date", "number", "quantity", "reference", "uri", "special")
_COMPOSITE = len(_BUCKETS)
#: Distinct key sets remembered per type before starting over (real traffic has few).
_MAX_SHAPES = 256


#: A plain path of the resource, its converter and the parameter code: the rows of a
#: parameter (``code``) that a composite's component (``code`` of ``code-value-quantity``)
#: would compute again from the same element.
_Share = tuple[tuple[str, ...], Converter, str]


@dataclass(frozen=True, slots=True)
class _Step:
    """One branch of one parameter, with its converter chosen (a row of a type's plan)."""

    root: str | None  # the JSON key the branch reads (None: run it on every resource)
    slot: int  # index into the row lists
    run: Runner
    share: _Share | None = None  # set when a composite component needs the same rows


@dataclass(frozen=True, slots=True)
class _Component:
    """A composite's component, compiled for one branch of the composite's path."""

    memo: tuple[int, str, str]  # shared by composites with the same component and path
    runs: tuple[Runner, ...]
    #: Root keys of its branches when it reads the resource itself (None: unknown).
    roots: tuple[str, ...] | None
    share: _Share | None  # when a parameter's step yields the same rows


@dataclass(frozen=True, slots=True)
class _CompositeBranch:
    code: str  # the composite parameter's
    fn: Fn
    root: str | None
    components: tuple[_Component, ...]

    def may_yield(self, keys: frozenset[str]) -> bool:
        """False when the branch, or one of its components, reads an absent element."""
        if self.root is not None and self.root not in keys:
            return False
        for component in self.components:
            roots = component.roots
            if roots is not None and keys.isdisjoint(roots):
                return False
        return True


@dataclass(frozen=True, slots=True)
class _Active:
    """What runs for resources with one set of keys: the rest would find nothing."""

    steps: tuple[tuple[Runner, int, _Share | None], ...]
    composites: tuple[_CompositeBranch, ...]


@dataclass(frozen=True, slots=True)
class _Plan:
    steps: tuple[_Step, ...]
    composites: tuple[_CompositeBranch, ...]  # every branch of every composite, in order
    #: The active part by the resource's keys (in their order): resources of a type mostly
    #: have the same few shapes, so the selection is made once per shape.
    shapes: dict[tuple[str, ...], _Active] = field(default_factory=dict, compare=False)

    def active(self, resource: Mapping[str, Any]) -> _Active:
        """What to run for this resource (from the cache, for a known shape)."""
        shape = tuple(resource)
        found = self.shapes.get(shape)
        if found is None:
            found = self._select(frozenset(shape))
            if len(self.shapes) >= _MAX_SHAPES:
                self.shapes.clear()
            self.shapes[shape] = found
        return found

    def _select(self, keys: frozenset[str]) -> _Active:
        """The steps (in plan order, so rows come in the same order whatever the key order)
        and composite branches that can find values with these keys."""
        steps = tuple(
            (s.run, s.slot, s.share) for s in self.steps if s.root is None or s.root in keys
        )
        return _Active(steps, tuple(b for b in self.composites if b.may_yield(keys)))


def _plan(params: tuple[SearchParam, ...]) -> _Plan:
    """What extraction runs for a type, decided once per parameter table (not per resource)."""
    steps: list[_Step] = []
    composites: list[_CompositeBranch] = []
    for param in params:
        compiled = param.compiled
        if compiled is None:
            continue
        if param.type == "composite":
            composites.extend(_composite_branches(param, compiled))
            continue
        slot = _BUCKETS.index(param.type)
        for branch in compiled.branches:
            convert = _converter(param.type, branch.type)
            if convert is None:
                continue
            targets = frozenset(param.targets) if convert is _resource and param.targets else None
            run = _runner(branch, param.code, convert, targets)
            share = _share(branch, convert, param.code) if targets is None else None
            steps.append(_Step(branch.root, slot, run, share))
    wanted = {c.share for b in composites for c in b.components if c.share is not None}
    steps = [s if s.share in wanted else replace(s, share=None) for s in steps]
    return _Plan(tuple(steps), tuple(composites))


def _share(branch: Branch, convert: Converter, code: str) -> _Share | None:
    """The key of what a branch yields from the resource, when it is plain navigation."""
    return (branch.path, convert, code) if branch.path is not None else None


def _composite_branches(param: SearchParam, compiled: CompiledPath) -> list[_CompositeBranch]:
    branches: list[_CompositeBranch] = []
    for index, branch in enumerate(compiled.branches):
        components: list[_Component] = []
        for component in param.components:
            path = component.compiled[index]
            kind, code = component.param.type, component.param.code
            converted = [(b, _converter(kind, b.type)) for b in path.branches]
            usable = [(b, c) for b, c in converted if c is not None]
            runs = tuple(_runner(b, code, c) for b, c in usable)
            roots = [b.root for b, _ in usable]
            # Roots count only when the component reads the resource itself.
            known = branch.path == () and None not in roots
            share = _share(*usable[0], code) if branch.path == () and len(usable) == 1 else None
            components.append(
                _Component(
                    (id(path), code, kind),
                    runs,
                    tuple(r for r in roots if r is not None) if known else None,
                    share,
                )
            )
        branches.append(_CompositeBranch(param.code, branch.fn, branch.root, tuple(components)))
    return branches


def extract(
    resource: Mapping[str, Any],
    registry: Registry | None = None,
    *,
    base_url: str | None = None,
) -> IndexValues:
    """Index rows for every parameter of the resource's type (default: the shared registry).

    ``base_url`` is this server's base (``https://host/fhir``): absolute references to it are
    stored as local ones (url None), as the spec asks servers to treat them.
    """
    registry = registry or default_registry()
    resource_type = str(resource.get("resourceType"))
    plan: _Plan = registry.derived(resource_type, _plan)
    active = plan.active(resource)
    # In _BUCKETS order, then composites.
    buckets: list[list[Any]] = [[], [], [], [], [], [], [], [], []]
    memo: dict[Any, Any] = {}  # rows composite components reuse (see _Share)
    for run, slot, share in active.steps:
        out = buckets[slot]
        if share is None:
            run(resource, resource, out)
        else:
            start = len(out)
            run(resource, resource, out)
            memo[share] = out[start:]
    if active.composites:
        out = buckets[_COMPOSITE]
        for branch in active.composites:
            _composite(branch, resource, out, memo)
    for rows in buckets:
        if len(rows) > 1:
            rows[:] = dict.fromkeys(rows)
    strings, tokens, dates, numbers, quantities, references, uris, specials, composites = buckets
    if base_url:
        _localize(references, base_url.rstrip("/") + "/")
    return IndexValues(
        resource_type,
        strings,
        tokens,
        dates,
        numbers,
        quantities,
        references,
        uris,
        composites,
        specials,
    )


def _composite(
    branch: _CompositeBranch, resource: Mapping[str, Any], out: list[Any], memo: dict[Any, Any]
) -> None:
    """Every combination of the components' values, per item the composite path selects.

    Components repeat across composites (``code`` is in six Observation composites), so
    their rows are memoized per item for the duration of one extraction.
    """
    for item in branch.fn(resource, resource):
        parts: list[list[IndexValue]] = []
        for component in branch.components:
            key = (component.memo, id(item))
            rows = memo.get(key)
            if rows is None:
                rows = memo[key] = _component_rows(component, item, resource, memo)
            if not rows:
                break
            parts.append(rows)
        else:
            code = branch.code
            out.extend(_new(CompositeValue, (code, combo)) for combo in itertools.product(*parts))


def _component_rows(
    component: _Component, item: Any, resource: Mapping[str, Any], memo: dict[Any, Any]
) -> list[IndexValue]:
    rows: list[IndexValue] | None = None
    if component.share is not None:
        rows = memo.get(component.share)
    if rows is None:
        rows = []
        for run in component.runs:
            run(item, resource, rows)
    return list(dict.fromkeys(rows)) if len(rows) > 1 else rows


def _localize(rows: list[ReferenceValue], base: str) -> None:
    for i, row in enumerate(rows):
        if row.url is not None and row.target_id is not None and row.url.startswith(base):
            rows[i] = ReferenceValue(
                row.param,
                row.target_type,
                row.target_id,
                row.version,
                None,
                row.identifier_system,
                row.identifier_value,
            )

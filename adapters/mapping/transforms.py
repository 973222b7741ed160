"""The fixed vocabulary of value transforms a rule may name (``transform: date_time``).

Each takes one v2 value (a repetition in the engine's shape) and returns a FHIR value, or
None for "nothing to set"; a value that does not fit raises BadValue, which the engine turns
into a warning and skips. Transforms whose result type varies return ``paths.Typed``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from adapters.hl7v2.parse import Repetition
from adapters.hl7v2.types import Delimiters
from adapters.mapping.codes import UCUM, Codes
from adapters.mapping.datetimes import BadValue, format_offset, parse_dtm, parse_tm
from adapters.mapping.paths import Typed
from adapters.mapping.values import Context, is_empty, leaves, text

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")
_COMPARED = re.compile(r"(<=|>=|<>|<|>|=)\s*([+-]?(?:\d+\.?\d*|\.\d+))")
_RANGE = re.compile(
    r"([+-]?(?:\d+\.?\d*|\.\d+))\s*(?:-|_|\u2013|\.\.)\s*([+-]?(?:\d+\.?\d*|\.\d+))"
)
_OID = re.compile(r"[0-2](\.(0|[1-9]\d*))+")
_YES = {
    "Y": True,
    "N": False,
    "YES": True,
    "NO": False,
    "T": True,
    "F": False,
    "1": True,
    "0": False,
}


@dataclass(frozen=True, slots=True)
class Env:
    """What transforms may consult besides the value: code data, time zone, delimiters."""

    codes: Codes
    zone: ZoneInfo
    delimiters: Delimiters


Function = Callable[[Repetition, Context, Env], Any]


@dataclass(frozen=True, slots=True)
class Transform:
    function: Function
    #: The FHIR type of the result, for choice elements (None: the function returns Typed).
    fhir_type: str | None
    params: frozenset[str] = frozenset()
    #: Runs without a v2 source, reading the element being built.
    element_only: bool = False


def decimal(value: str) -> Decimal:
    """A v2 NM as a FHIR decimal (sign, leading zeros and bare points normalised)."""
    raw = value.strip()
    if not _NUMBER.fullmatch(raw):
        raise BadValue(f"{raw!r} is not a number")
    sign = "-" if raw.startswith("-") else ""
    digits = raw.lstrip("+-")
    whole, _, fraction = digits.partition(".")
    whole = whole.lstrip("0") or "0"
    text_value = f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"
    try:
        return Decimal(text_value)
    except InvalidOperation:
        raise BadValue(f"{raw!r} is not a number") from None


def _string(rep: Repetition, ctx: Context, env: Env) -> Any:
    return text(rep).strip() or None


def _text(rep: Repetition, ctx: Context, env: Env) -> Any:
    """The whole value as text: components re-joined as sent (free text with stray '^')."""
    d = env.delimiters
    comps = [d.subcomponent.join(subs).rstrip(d.subcomponent) for subs in rep]
    while comps and not comps[-1]:
        comps.pop()
    return d.component.join(comps).rstrip() or None


def _code(rep: Repetition, ctx: Context, env: Env) -> Any:
    return " ".join(text(rep).split()) or None


@lru_cache(maxsize=4096)
def _fhir_date(raw: str) -> str:
    """A v2 DT/DTM as a FHIR date; remembered, as messages repeat their timestamps."""
    return parse_dtm(raw).date()


@lru_cache(maxsize=4096)
def _fhir_date_time(raw: str, zone: ZoneInfo) -> str:
    """A v2 DTM as a FHIR dateTime (the zone's offset where none is sent); remembered."""
    return parse_dtm(raw).date_time(zone)


def _date(rep: Repetition, ctx: Context, env: Env) -> Any:
    return _fhir_date(text(rep)) if text(rep).strip() else None


def _date_time(rep: Repetition, ctx: Context, env: Env) -> Any:
    return _fhir_date_time(text(rep), env.zone) if text(rep).strip() else None


def _instant(rep: Repetition, ctx: Context, env: Env) -> Any:
    if not text(rep).strip():
        return None
    moment = parse_dtm(text(rep))
    if moment.precision < 5 and not ctx.params.get("pad"):
        raise BadValue(f"{text(rep)!r} has no time of day, so it is no instant")
    return moment.date_time(env.zone, pad=True)


def _time(rep: Repetition, ctx: Context, env: Env) -> Any:
    return parse_tm(text(rep)) if text(rep).strip() else None


def _decimal(rep: Repetition, ctx: Context, env: Env) -> Any:
    return decimal(text(rep)) if text(rep).strip() else None


def _integer(rep: Repetition, ctx: Context, env: Env) -> Any:
    raw = text(rep).strip()
    if not raw:
        return None
    if not re.fullmatch(r"[+-]?\d+", raw):
        raise BadValue(f"{raw!r} is not an integer")
    return int(raw)


def _positive_int(rep: Repetition, ctx: Context, env: Env) -> Any:
    value = _integer(rep, ctx, env)
    if value is not None and value < 1:
        raise BadValue(f"{value} is not a positive integer")
    return value


def _boolean(rep: Repetition, ctx: Context, env: Env) -> Any:
    raw = text(rep).strip().upper()
    if not raw:
        return None
    if raw not in _YES:
        raise BadValue(f"{raw!r} is not a yes/no indicator")
    return _YES[raw]


def units(rep: Repetition, env: Env) -> dict[str, Any]:
    """A CWE unit (OBX-6) as Quantity unit/system/code; UCUM only where it is UCUM."""
    if is_empty(rep):
        return {}
    code = rep[0][0].strip() if rep and rep[0] else ""
    label = rep[1][0].strip() if len(rep) > 1 and rep[1] else ""
    system = rep[2][0].strip().upper() if len(rep) > 2 and rep[2] else ""
    out: dict[str, Any] = {"unit": code or label}
    ucum = code if system == "UCUM" and code else env.codes.ucum(code or label)
    if ucum is not None:
        out.update(system=UCUM, code=ucum)
    return out


def _units_of(ctx: Context, env: Env) -> dict[str, Any]:
    number = ctx.params.get("units_field")
    if not number:
        return {}
    reps = ctx.segment.field(int(number))
    return units(reps[0], env) if reps else {}


def _quantity(value: Decimal, ctx: Context, env: Env, comparator: str = "") -> dict[str, Any]:
    q: dict[str, Any] = {"value": value}
    if comparator:
        q["comparator"] = comparator
    q.update(_units_of(ctx, env))
    return q


def _as_quantity(rep: Repetition, ctx: Context, env: Env) -> Any:
    """NM: a Quantity; a comparator written into the number ("<0.10") is kept as such."""
    raw = text(rep).strip()
    if not raw:
        return None
    if _NUMBER.fullmatch(raw):
        return Typed("Quantity", _quantity(decimal(raw), ctx, env))
    compared = _COMPARED.fullmatch(raw)
    if compared and compared.group(1) in ("<", "<=", ">", ">="):
        return Typed("Quantity", _quantity(decimal(compared.group(2)), ctx, env, compared.group(1)))
    raise BadValue(f"{raw!r} is not a number")


def _structured_numeric(rep: Repetition, ctx: Context, env: Env) -> Any:
    """SN (comparator^num1^separator^num2) as Quantity, Range, Ratio or a string."""
    parts = [p.strip() for p in leaves(rep)] + ["", "", "", ""]
    comparator, first, separator, second = parts[:4]
    if comparator and not first and not separator:
        whole = comparator
        if _NUMBER.fullmatch(whole):
            comparator, first = "", whole
        elif match := _COMPARED.fullmatch(whole):
            comparator, first = match.group(1), match.group(2)
        elif match := _RANGE.fullmatch(whole):
            comparator, first, separator, second = "", match.group(1), "-", match.group(2)
    if separator in (":", "/") and first and second:
        unit = _units_of(ctx, env)
        return Typed(
            "Ratio",
            {
                "numerator": {"value": decimal(first), **unit},
                "denominator": {"value": decimal(second)},
            },
        )
    if separator == "-" and first and second:
        unit = _units_of(ctx, env)
        return Typed(
            "Range",
            {"low": {"value": decimal(first), **unit}, "high": {"value": decimal(second), **unit}},
        )
    if separator == "+" or (separator and not second):
        return Typed("String", " ".join(p for p in (comparator, first, separator, second) if p))
    if not first:
        return None
    if comparator in ("", "="):
        return Typed("Quantity", _quantity(decimal(first), ctx, env))
    if comparator in ("<", "<=", ">", ">="):
        return Typed("Quantity", _quantity(decimal(first), ctx, env, comparator))
    raise BadValue(f"SN comparator {comparator!r} has no FHIR equivalent")


def _reference_range(rep: Repetition, ctx: Context, env: Env) -> Any:
    """OBX-7 as referenceRange: low/high where it reads as a range, always the text."""
    raw = _text(rep, ctx, env)
    if not raw:
        return None
    out: dict[str, Any] = {}
    unit = _units_of(ctx, env)
    if match := _RANGE.fullmatch(raw):
        out["low"] = {"value": decimal(match.group(1)), **unit}
        out["high"] = {"value": decimal(match.group(2)), **unit}
    elif (match := _COMPARED.fullmatch(raw)) and match.group(1) in ("<", "<="):
        out["high"] = {"value": decimal(match.group(2)), **unit}
    elif match and match.group(1) in (">", ">="):
        out["low"] = {"value": decimal(match.group(2)), **unit}
    out["text"] = raw
    return out


def _sampled_data(rep: Repetition, ctx: Context, env: Env) -> Any:
    """NA: the numbers as one SampledData series (origin 0; v2 gives no sampling period)."""
    numbers = [p.strip() for p in leaves(rep) if p.strip()]
    if not numbers:
        return None
    values = [str(decimal(n)) for n in numbers]
    data = {"origin": {"value": Decimal(0)}, "period": Decimal(0), "dimensions": 1}
    return Typed("SampledData", {**data, "data": " ".join(values)})


def _period(rep: Repetition, ctx: Context, env: Env) -> Any:
    """DR (start^end) as a Period."""
    parts = [*leaves(rep), "", ""]
    out = {}
    if parts[0].strip():
        out["start"] = _fhir_date_time(parts[0], env.zone)
    if parts[1].strip():
        out["end"] = _fhir_date_time(parts[1], env.zone)
    return Typed("Period", out) if out else None


def _component(rep: Repetition, number: Any) -> str:
    index = int(number) - 1
    return rep[index][0].strip() if 0 <= index < len(rep) and rep[index] else ""


def _uri_system(rep: Repetition, ctx: Context, env: Env) -> Any:
    """urn:ietf:rfc:3986 when the element's value is itself a URI (an OID as urn:oid:...)."""
    value = ctx.element.get("value")
    if isinstance(value, str) and re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", value):
        return "urn:ietf:rfc:3986"
    return None


def _coding(rep: Repetition, ctx: Context, env: Env) -> Any:
    """One CWE triplet as a Coding. Params name the components: ``code``, ``display``,
    ``system`` (a coding-system name; empty: the rule's v2 table if the code is in it) and
    ``version`` (else the year a German name like ICD10GM2016 carries); the display falls
    back to the v2 table's."""
    p = ctx.params
    code = " ".join(_component(rep, p.get("code", 1)).split())
    if not code:
        return None
    name = _component(rep, p.get("system", 3))
    if name:
        system = env.codes.system_for_name(name)
        version = _component(rep, p.get("version", 7)) or env.codes.version_for_name(name)
    else:
        table = env.codes.tables.get(ctx.table or "")
        system = table.url if table is not None and code in table.concepts else None
        version = _component(rep, p.get("version", 7))
    display = _component(rep, p.get("display", 2))
    if not display and system:
        display = env.codes.display(system, code) or ""
    coding = {"system": system, "version": version, "code": code, "display": display}
    return {k: v for k, v in coding.items() if v}


def _oid_uri(rep: Repetition, ctx: Context, env: Env) -> Any:
    """An HD's universal id as a URI: urn:oid:<oid>, or the URI itself."""
    _, universal, kind = _hd(rep)
    if _OID.fullmatch(universal):
        return f"urn:oid:{universal}"
    if kind in ("URI", "URL") and ":" in universal:
        return universal
    return None


def _table_display(rep: Repetition, ctx: Context, env: Env) -> Any:
    """The display of the element's code when its system is a v2 table we carry."""
    system, code = ctx.element.get("system"), ctx.element.get("code")
    if isinstance(system, str) and isinstance(code, str):
        return env.codes.display(system, code)
    return None


def _hd(rep: Repetition) -> tuple[str, str, str]:
    parts = [p.strip() for p in leaves(rep)] + ["", "", ""]
    return parts[0], parts[1], parts[2].upper()


def _identifier_system(rep: Repetition, ctx: Context, env: Env) -> Any:
    """An assigning authority (HD) as Identifier.system: known OIDs and namespaces to their
    URLs (KVNR, IK, LANR ...), other OIDs as urn:oid:, URIs as they are; else nothing."""
    namespace, universal, kind = _hd(rep)
    ids = env.codes.identifiers
    if universal:
        if universal in ids.oids:
            return ids.oids[universal].system
        if _OID.fullmatch(universal):
            return f"urn:oid:{universal}"
        if kind in ("URI", "URL") and re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*:\S+", universal):
            return universal
    if namespace and namespace in ids.namespaces:
        return ids.namespaces[namespace].system
    return None


def _identifier_system_type(rep: Repetition, ctx: Context, env: Env) -> Any:
    """The identifier type a known authority implies (KVNR: KVZ10), as a CodeableConcept."""
    namespace, universal, _ = _hd(rep)
    ids = env.codes.identifiers
    known = ids.oids.get(universal) if universal else None
    known = known or (ids.namespaces.get(namespace) if namespace else None)
    if known is None or known.type is None:
        return None
    return {"coding": [known.type.model_dump(exclude_none=True)]}


def _system_for_type(rep: Repetition, ctx: Context, env: Env) -> Any:
    """Identifier.system implied by an identifier type code (LANR, BSNR ...)."""
    found = env.codes.identifiers.types.get(text(rep).strip())
    return found.system if found else None


def _join(rep: Repetition, ctx: Context, env: Env) -> Any:
    separator = str(ctx.params.get("separator", " "))
    parts = [" ".join(sub.strip() for sub in comp if sub.strip()) for comp in rep]
    return separator.join(p for p in parts if p) or None


def _telephone(rep: Repetition, ctx: Context, env: Env) -> Any:
    """An XTN number from its parts (country, area, local, extension) when not given whole."""
    parts = [p.strip() for p in leaves(rep)] + [""] * 8
    country, area, local, extension = parts[4:8]
    if not local:
        return None
    number = " ".join(p for p in (f"+{country}" if country else "", area, local) if p)
    return f"{number} ext. {extension}" if extension else number


def _duration_minutes(amount: str, unit: str, env: Env) -> float | None:
    factor = env.codes.units.minutes.get(unit.strip()) or env.codes.units.minutes.get(
        unit.strip().lower()
    )
    if factor is None or not amount.strip():
        return None
    return float(decimal(amount)) * factor


def _minutes(rep: Repetition, ctx: Context, env: Env) -> Any:
    """A duration (NM) in the units of another field (params units_field) as whole minutes."""
    unit_field = ctx.params.get("units_field")
    unit_reps = ctx.segment.field(int(unit_field)) if unit_field else []
    unit = text(unit_reps[0]) if unit_reps else ""
    minutes = _duration_minutes(text(rep), unit, env)
    if minutes is None:
        return None
    whole = round(minutes)
    return whole if whole >= 1 else None


def _end_from_duration(rep: Repetition, ctx: Context, env: Env) -> Any:
    """An instant: this start plus the duration in params duration_field/units_field."""
    if not text(rep).strip():
        return None
    moment = parse_dtm(text(rep))
    if moment.precision < 5:
        return None
    segment = ctx.segment
    amount_reps = segment.field(int(ctx.params["duration_field"]))
    unit_reps = segment.field(int(ctx.params["units_field"]))
    amount = text(amount_reps[0]) if amount_reps else ""
    unit = text(unit_reps[0]) if unit_reps else ""
    minutes = _duration_minutes(amount, unit, env)
    if not minutes:
        return None
    end = moment.as_datetime(env.zone) + timedelta(minutes=minutes)
    offset = format_offset(end.utcoffset() or timedelta(0))
    return end.strftime("%Y-%m-%dT%H:%M:%S") + offset


#: The vocabulary. Params are checked when the mappings load.
NAMES: dict[str, Transform] = {
    "string": Transform(_string, "String"),
    "text": Transform(_text, "String"),
    "code": Transform(_code, "Code"),
    "date": Transform(_date, "Date"),
    "date_time": Transform(_date_time, "DateTime"),
    "instant": Transform(_instant, "Instant", frozenset({"pad"})),
    "time": Transform(_time, "Time"),
    "decimal": Transform(_decimal, "Decimal"),
    "integer": Transform(_integer, "Integer"),
    "positive_int": Transform(_positive_int, "PositiveInt"),
    "boolean": Transform(_boolean, "Boolean"),
    "quantity": Transform(_as_quantity, None, frozenset({"units_field"})),
    "structured_numeric": Transform(_structured_numeric, None, frozenset({"units_field"})),
    "reference_range": Transform(_reference_range, None, frozenset({"units_field"})),
    "sampled_data": Transform(_sampled_data, None),
    "period": Transform(_period, None),
    "coding": Transform(_coding, "Coding", frozenset({"code", "display", "system", "version"})),
    "oid_uri": Transform(_oid_uri, "Uri"),
    "uri_system": Transform(_uri_system, "Uri", element_only=True),
    "table_display": Transform(_table_display, "String", element_only=True),
    "identifier_system": Transform(_identifier_system, "Uri"),
    "identifier_system_type": Transform(_identifier_system_type, "CodeableConcept"),
    "system_for_identifier_type": Transform(_system_for_type, "Uri"),
    "join": Transform(_join, "String", frozenset({"separator"})),
    "telephone": Transform(_telephone, "String"),
    "minutes": Transform(_minutes, "PositiveInt", frozenset({"units_field"})),
    "end_from_duration": Transform(
        _end_from_duration, "Instant", frozenset({"duration_field", "units_field"})
    ),
}

#: Params a transform cannot do without.
REQUIRED_PARAMS: dict[str, frozenset[str]] = {
    "end_from_duration": frozenset({"duration_field", "units_field"}),
}

"""FHIR JSON bytes <-> Python values without losing decimal precision.

FHIR requires decimals to keep their written precision (``1.50`` stays ``1.50``), so floats are
parsed as :class:`decimal.Decimal` and written back verbatim through ``orjson.Fragment``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

from fhir_server.fhir.outcomes import FhirError


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate property {key!r}")
            seen.add(key)
    return obj


#: Deeper documents are refused before any recursive code (validation, indexing) sees them;
#: real resources stay far below this (a Bundle of Questionnaires with nested items ~30).
MAX_DEPTH = 64


def loads(data: bytes | str) -> Any:
    """Parse JSON strictly: decimals as Decimal, no NaN/Infinity, no duplicate keys."""
    try:
        value = json.loads(
            data,
            parse_float=Decimal,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys,
        )
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FhirError(400, "structure", f"Request body is not valid JSON: {exc}") from exc
    check_depth(value)
    return value


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse documents nested deeper than ``limit`` (the recursion stops at ``limit``)."""
    _check_depth(value, 1, limit)


def _check_depth(value: Any, depth: int, limit: int) -> None:
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return
    if depth > limit:
        raise FhirError(400, "too-costly", f"Document is nested deeper than {limit} levels")
    for item in items:
        kind = type(item)
        # Exact types first (cheap); strings, most items, skip the subclass test.
        if kind is dict or kind is list or (kind is not str and isinstance(item, dict | list)):
            _check_depth(item, depth + 1, limit)


class RawJson:
    """Already-serialized JSON (a stored resource) to embed verbatim in a larger document."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _default(obj: Any) -> Any:
    if isinstance(obj, RawJson):
        return orjson.Fragment(obj.data)
    if isinstance(obj, Decimal):
        return orjson.Fragment(format(obj, "f"))
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def dumps(value: Any, pretty: bool = False) -> bytes:
    """Serialize with decimals exactly as parsed."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(value, default=_default, option=option)


def loads_trusted(data: bytes) -> Any:
    """Parse JSON the server wrote itself (stored resources), decimals kept."""
    return json.loads(data, parse_float=Decimal)

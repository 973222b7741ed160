"""FHIR JSON bytes <-> Python values without losing decimal precision.

FHIR requires decimals to keep their written precision (``1.50`` stays ``1.50``), so floats are
parsed as :class:`decimal.Decimal` and written back verbatim through ``orjson.Fragment``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import jiter
import orjson

from fhir_server.fhir.outcomes import FhirError

#: Deeper documents are refused before any recursive code (validation, indexing) sees them;
#: real resources stay far below this (a Bundle of Questionnaires with nested items ~30).
MAX_DEPTH = 64
#: Decimals are written out in full (``1.5E+3`` as ``1500``): ``1e99999999`` would become
#: 100 MB of digits, and no database column holds it. Refused while parsing.
MAX_EXPONENT = 1000


def loads(data: bytes | str) -> Any:
    """Parse JSON strictly: decimals as Decimal, no NaN/Infinity, no duplicate keys.

    jiter (pydantic's parser) does all three while parsing, about twice as fast as the
    standard library with an ``object_pairs_hook``, and says where the problem is.
    """
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        value = jiter.from_json(
            raw,
            allow_inf_nan=False,
            cache_mode="keys",
            catch_duplicate_keys=True,
            float_mode="decimal",
        )
    except ValueError as exc:  # UnicodeEncodeError included (a str with lone surrogates)
        if str(exc).startswith("recursion limit exceeded"):
            raise _too_deep(MAX_DEPTH) from exc
        raise FhirError(400, "structure", f"Request body is not valid JSON: {exc}") from exc
    check_depth(value)
    return value


def _too_deep(limit: int) -> FhirError:
    return FhirError(400, "too-costly", f"Document is nested deeper than {limit} levels")


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse documents nested deeper than ``limit`` (the recursion stops at ``limit``) and
    decimals beyond ±1E``MAX_EXPONENT``."""
    _check_depth(value, 1, limit)


def _check_depth(value: Any, depth: int, limit: int) -> None:
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return
    if depth > limit:
        raise _too_deep(limit)
    for item in items:
        kind = type(item)
        # Exact types first (cheap); strings, most items, skip the subclass test.
        if kind is dict or kind is list or (kind is not str and isinstance(item, dict | list)):
            _check_depth(item, depth + 1, limit)
        elif kind is Decimal and abs(item.adjusted()) > MAX_EXPONENT:
            raise FhirError(400, "value", f"Number {str(item)[:40]} is outside ±1E{MAX_EXPONENT}")


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
    try:
        return orjson.dumps(value, default=_default, option=option)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise
        # A huge integer, as parsed (rare): checking for one up front costs every document.
        return orjson.dumps(_widen(value), default=_default, option=option)


def loads_trusted(data: bytes) -> Any:
    """Parse JSON the server wrote itself (stored resources), decimals kept."""
    return jiter.from_json(data, cache_mode="keys", float_mode="decimal")


_INT_RANGE = range(-(2**63), 2**64)


def _widen(value: Any) -> Any:
    """Integers beyond 64 bits (valid FHIR decimals) as Decimal, which is written verbatim."""
    kind = type(value)
    if kind is dict:
        return {k: _widen(v) for k, v in value.items()}
    if kind is list:
        return [_widen(v) for v in value]
    if kind is int and value not in _INT_RANGE:
        return Decimal(value)
    return value

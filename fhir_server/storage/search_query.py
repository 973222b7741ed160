"""SQL for FHIR search: one condition builder per parameter type, chains, _has, sorting.

Semantics follow http://hl7.org/fhir/R4/search.html; parsing lives in ``search/request.py``
and value rules (normalisation, precision ranges) in ``search/extract.py`` so that the write
and the query side agree. Everything here returns SQLAlchemy Core expressions over the
``resources`` table, so this module is the only place search SQL is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Table,
    and_,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    tuple_,
    union,
)

from fhir_server.fhir.outcomes import FhirError
from fhir_server.search.contained import ID_PARAM as CONTAINED_ID
from fhir_server.search.contained import PREFIX as CONTAINED_PREFIX
from fhir_server.search.extract import (
    CONTAINED_TARGET,
    MAX_DATE,
    date_range,
    normalize,
    number_range,
)
from fhir_server.search.registry import Registry, SearchParam
from fhir_server.search.request import Filter, Link, split_prefix, split_unescaped, unescape
from fhir_server.storage.schema import resources
from fhir_server.storage.search_tables import (
    INDEX_TABLES,
    idx_composite,
    idx_date,
    idx_number,
    idx_quantity,
    idx_reference,
    idx_string,
    idx_token,
    idx_uri,
)

Condition = ColumnElement[bool]

_TABLE_OF = INDEX_TABLES

_MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"not", "text", "of-type", "missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "reference": {"identifier", "missing"},
    "uri": {"above", "below", "missing"},
    "composite": {"missing"},
}


@dataclass(frozen=True)
class Walk:
    """How to read a sort key in order from its index table (``table.param``, ``column``)."""

    table: Table
    column: str
    code: str
    types: tuple[str, ...]


@dataclass(frozen=True)
class SortKey:
    """``expr`` gives the resource's sort value; ``walk`` says how an index yields it in order."""

    expr: ColumnElement[Any]
    descending: bool
    walk: Walk | None = None


class UnknownParameter(FhirError):
    """A parameter the registry does not know (ignored and reported unless strict)."""


def bad_value(param: str, value: str, why: str) -> FhirError:
    return FhirError(
        400,
        "value",
        f"Invalid value '{value[:80]}' for search parameter '{param}': {why}",
        (param,),
    )


@dataclass(frozen=True)
class Scope:
    """The resource table alias a condition applies to, and the types it may hold."""

    table: FromClause
    types: tuple[str, ...]

    @property
    def pk(self) -> ColumnElement[Any]:
        column: ColumnElement[Any] = self.table.c.res_pk
        return column


class QueryBuilder:
    """Turns parsed Filters into conditions; knows the registry and this server's base URL."""

    def __init__(
        self,
        registry: Registry,
        base_url: str = "",
        visible: Callable[[Scope], Condition] | None = None,
        contained: bool = False,
    ) -> None:
        self.registry = registry
        self.base_url = base_url.rstrip("/")
        #: The client's access rule: chains and _has only reach what the client may see.
        self.visible = visible
        #: Conditions on the resources contained in ``scope``'s rows (``_contained``): their
        #: index rows carry '#'-prefixed codes under the container's key (search/contained.py).
        self.contained = contained
        self.prefix = CONTAINED_PREFIX if contained else ""

    # --- entry points ------------------------------------------------------------------------

    def param(self, resource_types: Sequence[str], code: str) -> SearchParam | None:
        """The parameter for the first type that knows ``code`` (types share common ones)."""
        for rtype in resource_types:
            found = self.registry.get(rtype, code)
            if found is not None:
                return found
        return None

    def condition(self, scope: Scope, flt: Filter) -> Condition:
        """A filter (chained, reverse-chained or plain) as a condition on ``scope``."""
        if flt.has:
            return self._has(scope, flt)
        if flt.chain:
            return self._chain(scope, flt.chain, Filter(flt.code, flt.modifier, flt.values))
        return self._plain(scope, flt)

    # --- chains ------------------------------------------------------------------------------

    def _chain(self, scope: Scope, chain: tuple[Link, ...], leaf: Filter) -> Condition:
        link, rest = chain[0], chain[1:]
        ref = self.param(scope.types, link.code)
        if ref is None or ref.type != "reference":
            raise FhirError(
                400,
                "not-supported",
                f"Chained parameter '{link.code}' is not a "
                f"reference parameter of {'/'.join(scope.types)}",
                (link.code,),
            )
        targets = (link.target_type,) if link.target_type else (ref.targets or ())
        targets = tuple(t for t in targets if self.registry.params_for(t))
        if not targets:
            raise FhirError(
                400,
                "not-supported",
                f"Chained parameter '{link.code}' has no "
                "searchable target type; name it as code:Type",
                (link.code,),
            )
        target = resources.alias()
        inner = Scope(target, targets)
        hops = self._uncontained()
        cond = hops._chain(inner, rest, leaf) if rest else hops._plain(inner, leaf)
        ref_rows = idx_reference.alias()
        matching = select(target.c.res_type, target.c.res_id).where(
            target.c.res_type.in_(targets), target.c.deleted.is_(False), cond
        )
        if self.visible is not None:
            matching = matching.where(self.visible(inner))
        sub = select(ref_rows.c.res_pk).where(
            ref_rows.c.res_type.in_(scope.types),
            ref_rows.c.param == self.prefix + link.code,
            tuple_(ref_rows.c.target_type, ref_rows.c.target_id).in_(matching),
        )
        if self.contained:
            return scope.pk.in_(sub)
        # One IN over a UNION, not an OR of two: the planner keeps the semi-join.
        held = self._chain_contained(scope, link.code, targets, rest, leaf)
        return scope.pk.in_(union(sub, held))

    def _chain_contained(
        self,
        scope: Scope,
        code: str,
        targets: tuple[str, ...],
        rest: tuple[Link, ...],
        leaf: Filter,
    ) -> Select[Any]:
        """The chain's first link into a contained resource (R4: chains are evaluated inside
        contained resources): a local reference ``#id`` to a contained resource of a target
        type whose container holds a contained resource meeting the rest of the chain (the
        keys of the resources holding such a reference)."""
        inside = QueryBuilder(self.registry, self.base_url, self.visible, contained=True)
        holder = resources.alias()
        held = Scope(holder, targets)
        cond = inside._chain(held, rest, leaf) if rest else inside._plain(held, leaf)
        local, ids = idx_reference.alias(), idx_token.alias()
        named = (
            select(ids.c.res_pk)
            .where(
                ids.c.res_pk == local.c.res_pk,
                ids.c.res_type.in_(targets),
                ids.c.param == CONTAINED_ID,
                ids.c.code == local.c.target_id,
            )
            .exists()
        )
        return select(local.c.res_pk).where(
            local.c.target_type == CONTAINED_TARGET,
            local.c.res_type.in_(scope.types),
            local.c.param == code,
            named,
            local.c.res_pk.in_(select(holder.c.res_pk).where(cond)),
        )

    def _uncontained(self) -> QueryBuilder:
        """The builder for what a chain reaches: resources themselves, not contained ones."""
        if not self.contained:
            return self
        return QueryBuilder(self.registry, self.base_url, self.visible)

    def contains(self, scope: Scope) -> Condition:
        """Rows of ``scope``'s table that contain a resource of ``scope``'s types."""
        sub = select(idx_token.c.res_pk).where(
            idx_token.c.res_type.in_(scope.types), idx_token.c.param == CONTAINED_ID
        )
        return scope.pk.in_(sub)

    def _has(self, scope: Scope, flt: Filter) -> Condition:
        if self.contained:
            raise FhirError(
                400, "not-supported", "_has is not supported with _contained", ("_has",)
            )
        has, rest = flt.has[0], flt.has[1:]
        if not self.registry.params_for(has.resource_type):
            raise FhirError(
                400,
                "not-supported",
                f"_has: unknown resource type '{has.resource_type}'",
                ("_has",),
            )
        ref = self.registry.get(has.resource_type, has.reference_param)
        if ref is None or ref.type != "reference":
            raise FhirError(
                400,
                "not-supported",
                f"_has: '{has.reference_param}' is not a "
                f"reference parameter of {has.resource_type}",
                ("_has",),
            )
        other = resources.alias()
        inner = Scope(other, (has.resource_type,))
        leaf = Filter(flt.code, flt.modifier, flt.values, flt.chain, rest)
        ref_rows = idx_reference.alias()
        pointed = (
            select(ref_rows.c.target_type, ref_rows.c.target_id)
            .join(other, other.c.res_pk == ref_rows.c.res_pk)
            .where(
                ref_rows.c.res_type == has.resource_type,
                ref_rows.c.param == has.reference_param,
                other.c.deleted.is_(False),
                self.condition(inner, leaf),
            )
        )
        if self.visible is not None:
            pointed = pointed.where(self.visible(inner))
        return tuple_(scope.table.c.res_type, scope.table.c.res_id).in_(pointed)

    # --- plain parameters --------------------------------------------------------------------

    def _plain(self, scope: Scope, flt: Filter) -> Condition:
        if flt.code == "_id":
            return self._id(scope, flt)
        if flt.code == "_lastUpdated":
            return self._last_updated(scope, flt)
        param = self.param(scope.types, flt.code)
        if param is None:
            raise UnknownParameter(
                400,
                "not-supported",
                f"Unknown search parameter '{flt.code}' for {'/'.join(scope.types)}",
                (flt.code,),
            )
        table = _TABLE_OF.get(param.type)
        if table is None or param.compiled is None:
            raise FhirError(
                400,
                "not-supported",
                f"Search parameter '{flt.code}' (type {param.type}) is not supported",
                (flt.code,),
            )
        modifier = flt.modifier
        if modifier and param.type == "reference" and modifier[:1].isupper():
            return self._rows(scope, table, param, self._reference_typed(param, flt, modifier))
        if modifier and modifier not in _MODIFIERS[param.type]:
            raise FhirError(
                400,
                "not-supported",
                f"Modifier ':{modifier}' is not supported on {param.type} parameter '{flt.code}'",
                (flt.code,),
            )
        if modifier == "missing":
            return self._missing(scope, table, param, flt)
        if modifier == "not":
            conds = [self._token(param, v, None) for v in flt.values]
            return not_(self._rows(scope, table, param, or_(*conds)))
        if param.type == "token" and modifier is None and len(flt.values) > 1:
            return self._rows(scope, table, param, self._token_list(param, flt.values))
        builder = getattr(self, f"_{param.type}")
        conds = [builder(param, v, modifier) for v in flt.values]
        return self._rows(scope, table, param, or_(*conds))

    def _rows(self, scope: Scope, table: Any, param: SearchParam, cond: Condition) -> Condition:
        sub = select(table.c.res_pk).where(self._param_rows(table, scope.types, param.code), cond)
        return scope.pk.in_(sub)

    def _param_rows(self, table: Any, types: Sequence[str], code: str) -> Condition:
        """Rows of ``code`` for these types: a union parameter (``combo-code``) is not indexed
        and reads the rows of its sources (``code``, ``component-code``; Registry.unions)."""
        by_codes: dict[tuple[str, ...], list[str]] = {}
        for rtype in types:
            codes = self.registry.unions(rtype).get(code, (code,))
            by_codes.setdefault(codes, []).append(rtype)
        conds = [
            and_(
                table.c.res_type.in_(rtypes),
                table.c.param == self.prefix + codes[0]
                if len(codes) == 1
                else table.c.param.in_([self.prefix + c for c in codes]),
            )
            for codes, rtypes in by_codes.items()
        ]
        return conds[0] if len(conds) == 1 else or_(*conds)

    def _missing(self, scope: Scope, table: Any, param: SearchParam, flt: Filter) -> Condition:
        if len(flt.values) != 1 or flt.values[0] not in ("true", "false"):
            raise bad_value(flt.code, ",".join(flt.values), ":missing takes true or false")
        present = self._rows(scope, table, param, true())
        return not_(present) if flt.values[0] == "true" else present

    def _id(self, scope: Scope, flt: Filter) -> Condition:
        if flt.modifier == "missing":
            return false() if flt.values == ("true",) else true()
        if flt.modifier not in (None, "exact", "not"):
            raise FhirError(400, "not-supported", f"Modifier ':{flt.modifier}' on _id", ("_id",))
        ids = [unescape(v) for v in flt.values if v]
        cond = scope.table.c.res_id.in_(ids)
        if self.contained:  # the contained resources' ids, not the containers'
            rows = select(idx_token.c.res_pk).where(
                idx_token.c.res_type.in_(scope.types),
                idx_token.c.param == CONTAINED_ID,
                idx_token.c.code.in_(ids),
            )
            cond = scope.pk.in_(rows)
        return not_(cond) if flt.modifier == "not" else cond

    def _last_updated(self, scope: Scope, flt: Filter) -> Condition:
        col = scope.table.c.last_updated
        conds = []
        for value in flt.values:
            prefix, text = split_prefix(value)
            low, high = _date_value("_lastUpdated", value, text)
            conds.append(_range_compare(prefix, col, col, low, high, point=True))
        return or_(*conds)

    # --- one builder per parameter type ------------------------------------------------------

    def _string(self, param: SearchParam, value: str, modifier: str | None) -> Condition:
        text = unescape(value)
        if modifier == "exact":
            return idx_string.c.exact == text
        norm = normalize(text)[:255]
        if modifier == "contains":
            return idx_string.c.norm.contains(norm, autoescape=True)
        return idx_string.c.norm.startswith(norm, autoescape=True)

    def _token_list(self, param: SearchParam, values: Sequence[str]) -> Condition:
        """``identifier=s|a,s|b,…``: one ``code IN (…)`` per system instead of an OR of pairs.

        Importers look up hundreds of identifiers at once; building and compiling one comparison
        per value cost more than running the query. Values of other shapes (``s|``, ``|c``)
        keep their own condition.
        """
        by_system: dict[str | None, list[str]] = {}
        others: list[Condition] = []
        for value in values:
            parts = split_unescaped(value, "|")
            if len(parts) == 1:
                by_system.setdefault(None, []).append(unescape(parts[0]))
            elif len(parts) == 2 and parts[0] and parts[1]:
                by_system.setdefault(unescape(parts[0]), []).append(unescape(parts[1]))
            else:
                others.append(self._token(param, value, None))
        t = idx_token.c
        conds = [
            t.code.in_(codes) if system is None else and_(t.system == system, t.code.in_(codes))
            for system, codes in by_system.items()
        ]
        return or_(*conds, *others)

    def _token(self, param: SearchParam, value: str, modifier: str | None) -> Condition:
        t = idx_token.c
        if modifier == "text":
            return t.text.startswith(normalize(unescape(value))[:255], autoescape=True)
        if modifier == "of-type":
            parts = split_unescaped(value, "|")
            if len(parts) != 3:
                raise bad_value(param.code, value, ":of-type takes system|code|value")
            system, code, ident = (unescape(p) for p in parts)
            return and_(t.type_system == system, t.type_code == code, t.code == ident)
        parts = split_unescaped(value, "|")
        if len(parts) == 1:
            return _token_code(t.code, unescape(parts[0]), param)
        if len(parts) != 2:
            raise bad_value(param.code, value, "a token is code, system|code, |code or system|")
        system, code = unescape(parts[0]), unescape(parts[1])
        if not system:
            return and_(t.system.is_(None), _token_code(t.code, code, param))
        if not code:
            return t.system == system
        return and_(t.system == system, _token_code(t.code, code, param))

    def _date(self, param: SearchParam, value: str, modifier: str | None) -> Condition:
        prefix, text = split_prefix(value)
        low, high = _date_value(param.code, value, text)
        return _range_compare(prefix, idx_date.c.low, idx_date.c.high, low, high)

    def _number(self, param: SearchParam, value: str, modifier: str | None) -> Condition:
        prefix, text = split_prefix(value)
        number = _decimal_value(param.code, value, text)
        return _number_compare(prefix, idx_number.c, number)

    def _quantity(self, param: SearchParam, value: str, modifier: str | None) -> Condition:
        parts = split_unescaped(value, "|")
        if len(parts) not in (1, 3):
            raise bad_value(param.code, value, "a quantity is [prefix]number[|system|code]")
        prefix, text = split_prefix(parts[0])
        number = _decimal_value(param.code, value, text)
        q = idx_quantity.c
        cond = _number_compare(prefix, q, number)
        if len(parts) == 3:
            system, code = unescape(parts[1]), unescape(parts[2])
            if system:
                cond = and_(cond, q.system == system, q.code == code)
            elif code:
                cond = and_(cond, or_(q.code == code, q.unit == code))
        return cond

    def _reference(self, param: SearchParam, value: str, modifier: str | None) -> Condition:
        r = idx_reference.c
        text = unescape(value)
        if modifier == "identifier":
            parts = split_unescaped(value, "|")
            if len(parts) == 1:
                return r.identifier_value == unescape(parts[0])
            system, ident = unescape(parts[0]), unescape(parts[1])
            cond = r.identifier_system == system
            return and_(cond, r.identifier_value == ident) if ident else cond
        if self.base_url and text.startswith(self.base_url + "/"):
            text = text[len(self.base_url) + 1 :]
        if "://" in text or text.startswith("urn:"):
            url, _, version = text.partition("|")
            cond = r.url == url
            return or_(cond, r.url == text) if version else cond
        parts = text.split("/")
        if len(parts) >= 2 and parts[-2][:1].isupper() and "_history" not in parts:
            return and_(r.target_type == parts[-2], r.target_id == parts[-1])
        if len(parts) >= 4 and parts[-2] != "_history":
            raise bad_value(param.code, value, "not a reference")
        if "_history" in parts:
            i = parts.index("_history")
            return and_(r.target_type == parts[i - 2], r.target_id == parts[i - 1])
        return r.target_id == text

    def _reference_typed(self, param: SearchParam, flt: Filter, rtype: str) -> Condition:
        r = idx_reference.c
        if param.targets and rtype not in param.targets:
            raise FhirError(
                400, "not-supported", f"'{rtype}' is not a target of '{flt.code}'", (flt.code,)
            )
        ids = [unescape(v).split("/")[-1] for v in flt.values]
        return and_(r.target_type == rtype, r.target_id.in_(ids))

    def _uri(self, param: SearchParam, value: str, modifier: str | None) -> Condition:
        text = unescape(value)
        col = idx_uri.c.uri
        if modifier == "below":
            return col.startswith(text, autoescape=True)
        if modifier == "above":  # the stored URI is a prefix of the value (no LIKE wildcards)
            return and_(
                func.length(col) <= len(text),
                func.substr(literal(text), 1, func.length(col)) == col,
            )
        return col == text

    def _composite(self, param: SearchParam, value: str, modifier: str | None) -> Condition:
        parts = split_unescaped(value, "$")
        if len(parts) != 2 or len(param.components) != 2:
            raise bad_value(param.code, value, "a composite value is first$second")
        c = idx_composite.c
        first = param.components[0].param
        if first.type == "reference":
            cond = c.c1_code == unescape(parts[0])
        else:
            cond = _system_code(c.c1_system, c.c1_code, parts[0], param.code)
        second_param = param.components[1].param
        second = parts[1]
        kind = second_param.type
        if kind == "token":
            return and_(cond, _system_code(c.c2_system, c.c2_code, second, param.code))
        if kind in ("quantity", "number"):
            pieces = split_unescaped(second, "|")
            prefix, text = split_prefix(pieces[0])
            number = _decimal_value(param.code, value, text)
            cols = _NumberColumns(c.c2_value, c.c2_low, c.c2_high)
            cond = and_(cond, _number_compare(prefix, cols, number))
            if len(pieces) == 3 and unescape(pieces[1]):
                cond = and_(
                    cond, c.c2_system == unescape(pieces[1]), c.c2_code == unescape(pieces[2])
                )
            elif len(pieces) == 3 and unescape(pieces[2]):
                cond = and_(cond, c.c2_code == unescape(pieces[2]))
            return cond
        if kind == "date":
            prefix, text = split_prefix(second)
            low_d, high_d = _date_value(param.code, value, text)
            return and_(cond, _range_compare(prefix, c.c2_date_low, c.c2_date_high, low_d, high_d))
        if kind == "string":
            return and_(cond, c.c2_text.startswith(normalize(unescape(second)), autoescape=True))
        raise FhirError(400, "not-supported", f"Composite '{param.code}' is not supported")

    # --- sorting -----------------------------------------------------------------------------

    def sort_key(self, scope: Scope, code: str, descending: bool) -> SortKey:
        """The value a resource sorts by: its lowest value ascending, highest descending."""
        if code == "_id":
            return SortKey(scope.table.c.res_id, descending)
        if code == "_lastUpdated":
            return SortKey(scope.table.c.last_updated, descending)
        param = self.param(scope.types, code)
        if param is None or param.type not in _SORT_COLUMN:
            raise FhirError(400, "not-supported", f"Cannot sort by '{code}'", ("_sort",))
        table = _TABLE_OF[param.type]
        name = _SORT_COLUMN[param.type][1 if descending else 0]
        column = table.c[name]
        agg = func.max(column) if descending else func.min(column)
        rows = self._param_rows(table, scope.types, code)
        expr = select(agg).where(table.c.res_pk == scope.pk, rows).scalar_subquery()
        union = any(code in self.registry.unions(t) for t in scope.types)
        walk = (
            None if self.contained or union else Walk(table, name, self.prefix + code, scope.types)
        )
        return SortKey(expr, descending, walk)


#: Column to sort by per parameter type: (ascending, descending).
_SORT_COLUMN = {
    "string": ("norm", "norm"),
    "token": ("code", "code"),
    "date": ("low", "high"),
    "number": ("value", "value"),
    "quantity": ("value", "value"),
    "reference": ("target_id", "target_id"),
    "uri": ("uri", "uri"),
}


@dataclass(frozen=True)
class _NumberColumns:
    """value/low/high columns, as ``_number_compare`` reads them from an index table."""

    value: Any
    low: Any
    high: Any


def _token_code(column: ColumnElement[Any], code: str, param: SearchParam) -> Condition:
    return column == code


def _system_code(
    system_col: ColumnElement[Any], code_col: ColumnElement[Any], value: str, param: str
) -> Condition:
    parts = split_unescaped(value, "|")
    if len(parts) == 1:
        return code_col == unescape(parts[0])
    system, code = unescape(parts[0]), unescape(parts[1])
    cond = system_col == system if system else system_col.is_(None)
    return and_(cond, code_col == code) if code else cond


def _date_value(param: str, value: str, text: str) -> tuple[datetime, datetime]:
    found = date_range(text)
    if found is None:
        raise bad_value(param, value, "not a FHIR date, dateTime or instant")
    return found


def _decimal_value(param: str, value: str, text: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise bad_value(param, value, "not a number") from None
    if not number.is_finite():
        raise bad_value(param, value, "not a finite number")
    return number


def _range_compare(
    prefix: str,
    low_col: ColumnElement[Any],
    high_col: ColumnElement[Any],
    low: Any,
    high: Any,
    point: bool = False,
) -> Condition:
    """Prefix semantics on [low, high) ranges (search.html#prefix); NULL bounds are open."""
    if point:  # an instant such as meta.lastUpdated: a range of zero width
        high_col = low_col
        contained = and_(low_col >= low, low_col < high)
        above: Condition = low_col >= high
        below: Condition = low_col < low
    else:
        # ``low < high`` is implied (ranges are non-empty) and lets the index bound the scan.
        contained = and_(low_col >= low, low_col < high, high_col <= high)
        above, below = high_col > high, low_col < low
    if prefix == "eq":
        return contained
    if prefix == "ne":
        return not_(contained)
    if prefix == "gt":
        return above
    if prefix == "lt":
        return below
    if prefix == "ge":
        if point:
            return or_(above, contained)
        # both alternatives end after the search range starts: an indexable bound
        return and_(high_col > low, or_(above, contained))
    if prefix == "le":  # both alternatives start before the search range ends
        return and_(low_col < high, or_(below, contained))
    if prefix == "sa":
        starts_after: Condition = low_col >= high
        return starts_after
    if prefix == "eb":
        ends_before: Condition = high_col <= low if not point else low_col < low
        return ends_before
    if prefix == "ap":
        slack = _approximate_slack(low, high)
        return and_(low_col < high + slack, high_col >= low - slack)
    raise ValueError(prefix)


def _approximate_slack(low: Any, high: Any) -> Any:
    """``ap``: 10% of the distance to now for dates, 10% of the value for numbers."""
    if isinstance(low, datetime):
        now = datetime.now(UTC)
        return max(abs(now - low) / 10, high - low) if high != MAX_DATE else timedelta(0)
    return abs(low) / 10


def _number_compare(prefix: str, cols: Any, number: Decimal) -> Condition:
    """Numbers: ``eq`` uses the search value's implicit precision; Ranges use low/high."""
    low, high = number_range(number)
    value = cols.value
    is_range = value.is_(None)
    range_low = func.coalesce(cols.low, Decimal("-1e30"))
    range_high = func.coalesce(cols.high, Decimal("1e30"))
    if prefix == "eq":
        return or_(
            and_(value >= low, value < high),
            and_(is_range, range_low <= number, range_high > number),
        )
    if prefix == "ne":
        return not_(and_(value >= low, value < high))
    if prefix in ("gt", "sa"):
        return or_(value > number, and_(is_range, range_high > number))
    if prefix in ("lt", "eb"):
        return or_(value < number, and_(is_range, range_low < number))
    if prefix == "ge":
        return or_(value >= number, and_(is_range, range_high > number))
    if prefix == "le":
        return or_(value <= number, and_(is_range, range_low <= number))
    if prefix == "ap":
        slack = abs(number) / 10
        return and_(value >= number - slack, value <= number + slack)
    raise ValueError(prefix)

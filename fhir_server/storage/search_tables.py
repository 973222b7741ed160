"""Search index tables: one per parameter type, rows keyed by ``resources.res_pk``.

Rows are written in the same transaction as the resource version they describe (HAPI's
typed index tables). ``param`` is the search parameter code; ``res_type`` is repeated so every
lookup is served by one composite index starting with (res_type, param).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Numeric, String, Table, Text

from fhir_server.storage.schema import PkType, metadata

STRING_LEN = 255
TOKEN_LEN = 512


def _base(name: str, *columns: Column[object]) -> Table:
    return Table(
        name,
        metadata,
        Column("res_pk", PkType, nullable=False, index=True),
        Column("res_type", String(64), nullable=False),
        Column("param", String(100), nullable=False),
        *columns,
    )


idx_string = _base(
    "idx_string",
    Column("norm", String(STRING_LEN), nullable=False),
    Column("exact", Text, nullable=False),
)
Index("ix_idx_string_lookup", idx_string.c.res_type, idx_string.c.param, idx_string.c.norm)

idx_token = _base(
    "idx_token",
    Column("system", String(TOKEN_LEN), nullable=True),
    Column("code", String(TOKEN_LEN), nullable=True),
    Column("text", String(STRING_LEN), nullable=True),
    #: Identifier.type coding, for the :of-type modifier.
    Column("type_system", String(TOKEN_LEN), nullable=True),
    Column("type_code", String(TOKEN_LEN), nullable=True),
)
Index(
    "ix_idx_token_lookup",
    idx_token.c.res_type,
    idx_token.c.param,
    idx_token.c.code,
    idx_token.c.system,
)

#: Ranges are [low, high): high is exclusive; open ends are stored as the extreme dates.
idx_date = _base(
    "idx_date",
    Column("low", DateTime(timezone=True), nullable=False),
    Column("high", DateTime(timezone=True), nullable=False),
)
Index("ix_idx_date_lookup", idx_date.c.res_type, idx_date.c.param, idx_date.c.low, idx_date.c.high)
Index("ix_idx_date_high", idx_date.c.res_type, idx_date.c.param, idx_date.c.high)

#: ``value`` is NULL for a Range; ``low``/``high`` NULL mean unbounded; high is exclusive.
idx_number = _base(
    "idx_number",
    Column("value", Numeric, nullable=True),
    Column("low", Numeric, nullable=True),
    Column("high", Numeric, nullable=True),
)
Index("ix_idx_number_lookup", idx_number.c.res_type, idx_number.c.param, idx_number.c.value)

idx_quantity = _base(
    "idx_quantity",
    Column("value", Numeric, nullable=True),
    Column("low", Numeric, nullable=True),
    Column("high", Numeric, nullable=True),
    Column("system", String(TOKEN_LEN), nullable=True),
    Column("code", String(TOKEN_LEN), nullable=True),
    Column("unit", String(STRING_LEN), nullable=True),
)
Index("ix_idx_quantity_lookup", idx_quantity.c.res_type, idx_quantity.c.param, idx_quantity.c.value)

idx_reference = _base(
    "idx_reference",
    Column("target_type", String(64), nullable=True),
    Column("target_id", String(TOKEN_LEN), nullable=True),
    Column("version", String(64), nullable=True),
    Column("url", String(TOKEN_LEN), nullable=True),
    #: Reference.identifier, for the :identifier modifier.
    Column("identifier_system", String(TOKEN_LEN), nullable=True),
    Column("identifier_value", String(TOKEN_LEN), nullable=True),
)
Index(
    "ix_idx_reference_lookup",
    idx_reference.c.res_type,
    idx_reference.c.param,
    idx_reference.c.target_id,
    idx_reference.c.target_type,
)
Index("ix_idx_reference_target", idx_reference.c.target_type, idx_reference.c.target_id)
Index(
    "ix_idx_reference_identifier",
    idx_reference.c.res_type,
    idx_reference.c.param,
    idx_reference.c.identifier_value,
    idx_reference.c.identifier_system,
)

idx_uri = _base("idx_uri", Column("uri", String(TOKEN_LEN), nullable=False))
Index("ix_idx_uri_lookup", idx_uri.c.res_type, idx_uri.c.param, idx_uri.c.uri)

#: Composite values (e.g. Observation code-value-quantity): the first component is a token (or
#: a reference as "Type/id"), the second a token, quantity/number, date or string.
idx_composite = _base(
    "idx_composite",
    Column("c1_system", String(TOKEN_LEN), nullable=True),
    Column("c1_code", String(TOKEN_LEN), nullable=True),
    Column("c2_system", String(TOKEN_LEN), nullable=True),
    Column("c2_code", String(TOKEN_LEN), nullable=True),
    Column("c2_value", Numeric, nullable=True),
    Column("c2_low", Numeric, nullable=True),
    Column("c2_high", Numeric, nullable=True),
    Column("c2_date_low", DateTime(timezone=True), nullable=True),
    Column("c2_date_high", DateTime(timezone=True), nullable=True),
    Column("c2_text", String(STRING_LEN), nullable=True),
)
Index(
    "ix_idx_composite_lookup",
    idx_composite.c.res_type,
    idx_composite.c.param,
    idx_composite.c.c1_code,
)

INDEX_TABLES = {
    "string": idx_string,
    "token": idx_token,
    "date": idx_date,
    "number": idx_number,
    "quantity": idx_quantity,
    "reference": idx_reference,
    "uri": idx_uri,
    "composite": idx_composite,
}

"""Search index tables, one per search parameter type.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PkType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TOKEN = 512
STRING = 255


def _table(name: str, *columns: sa.Column, lookup: list[str]) -> None:
    op.create_table(
        name,
        sa.Column("res_pk", PkType, nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("param", sa.String(100), nullable=False),
        *columns,
    )
    op.create_index(f"ix_{name}_res_pk", name, ["res_pk"])
    op.create_index(f"ix_{name}_lookup", name, ["res_type", "param", *lookup])


def upgrade() -> None:
    _table(
        "idx_string",
        sa.Column("norm", sa.String(STRING), nullable=False),
        sa.Column("exact", sa.Text, nullable=False),
        lookup=["norm"],
    )
    _table(
        "idx_token",
        sa.Column("system", sa.String(TOKEN)),
        sa.Column("code", sa.String(TOKEN)),
        sa.Column("text", sa.String(STRING)),
        sa.Column("type_system", sa.String(TOKEN)),
        sa.Column("type_code", sa.String(TOKEN)),
        lookup=["code", "system"],
    )
    _table(
        "idx_date",
        sa.Column("low", sa.DateTime(timezone=True), nullable=False),
        sa.Column("high", sa.DateTime(timezone=True), nullable=False),
        lookup=["low", "high"],
    )
    op.create_index("ix_idx_date_high", "idx_date", ["res_type", "param", "high"])
    _table(
        "idx_number",
        sa.Column("value", sa.Numeric),
        sa.Column("low", sa.Numeric),
        sa.Column("high", sa.Numeric),
        lookup=["value"],
    )
    _table(
        "idx_quantity",
        sa.Column("value", sa.Numeric),
        sa.Column("low", sa.Numeric),
        sa.Column("high", sa.Numeric),
        sa.Column("system", sa.String(TOKEN)),
        sa.Column("code", sa.String(TOKEN)),
        sa.Column("unit", sa.String(STRING)),
        lookup=["value"],
    )
    _table(
        "idx_reference",
        sa.Column("target_type", sa.String(64)),
        sa.Column("target_id", sa.String(TOKEN)),
        sa.Column("version", sa.String(64)),
        sa.Column("url", sa.String(TOKEN)),
        sa.Column("identifier_system", sa.String(TOKEN)),
        sa.Column("identifier_value", sa.String(TOKEN)),
        lookup=["target_id", "target_type"],
    )
    op.create_index("ix_idx_reference_target", "idx_reference", ["target_type", "target_id"])
    _table("idx_uri", sa.Column("uri", sa.String(TOKEN), nullable=False), lookup=["uri"])
    _table(
        "idx_composite",
        sa.Column("c1_system", sa.String(TOKEN)),
        sa.Column("c1_code", sa.String(TOKEN)),
        sa.Column("c2_system", sa.String(TOKEN)),
        sa.Column("c2_code", sa.String(TOKEN)),
        sa.Column("c2_value", sa.Numeric),
        sa.Column("c2_low", sa.Numeric),
        sa.Column("c2_high", sa.Numeric),
        sa.Column("c2_date_low", sa.DateTime(timezone=True)),
        sa.Column("c2_date_high", sa.DateTime(timezone=True)),
        sa.Column("c2_text", sa.String(STRING)),
        lookup=["c1_code"],
    )


def downgrade() -> None:
    for name in (
        "idx_string",
        "idx_token",
        "idx_date",
        "idx_number",
        "idx_quantity",
        "idx_reference",
        "idx_uri",
        "idx_composite",
    ):
        op.drop_table(name)

"""Outbound HL7 v2: one row per verdict version owed to a clinic's MLLP endpoint.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

PkType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hl7_outbox",
        sa.Column("id", PkType, primary_key=True, autoincrement=True),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("endpoint_id", sa.String(64), nullable=False),
        sa.Column("address", sa.String(512), nullable=False),
        sa.Column("message_type", sa.String(16), nullable=False),
        sa.Column("control_id", sa.String(20), nullable=False),
        sa.Column("message", sa.LargeBinary, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("rejections", sa.Integer, nullable=False),
        sa.Column("next_attempt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ack_code", sa.String(2)),
        sa.Column("last_error", sa.Text),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_hl7_outbox"),
        sa.UniqueConstraint(
            "res_type", "res_id", "version_id", "endpoint_id", name="uq_hl7_outbox_key"
        ),
        sa.UniqueConstraint("control_id", name="uq_hl7_outbox_control_id"),
    )
    op.create_index("ix_hl7_outbox_due", "hl7_outbox", ["status", "next_attempt"])
    op.create_index("ix_hl7_outbox_endpoint", "hl7_outbox", ["endpoint_id", "status", "id"])


def downgrade() -> None:
    op.drop_table("hl7_outbox")

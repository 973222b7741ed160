"""HL7 v2 message store: raw messages, deduplication key, status and produced resources.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PkType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KEY = 255


def upgrade() -> None:
    op.create_table(
        "hl7_messages",
        sa.Column("id", PkType, primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("sending_application", sa.String(KEY)),
        sa.Column("sending_facility", sa.String(KEY)),
        sa.Column("control_id", sa.String(KEY)),
        sa.Column("message_type", sa.String(16)),
        sa.Column("trigger_event", sa.String(16)),
        sa.Column("version", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("error_code", sa.String(16)),
        sa.Column("error_location", sa.String(64)),
        sa.Column("resources", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hl7_messages"),
        sa.UniqueConstraint(
            "sending_facility", "sending_application", "control_id", name="uq_hl7_messages_key"
        ),
    )
    op.create_index("ix_hl7_messages_status", "hl7_messages", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_table("hl7_messages")

"""Reference.identifier lookups (``:identifier`` searches, an insurer's Coverages by payor IK).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_idx_reference_identifier",
        "idx_reference",
        ["res_type", "param", "identifier_value", "identifier_system"],
    )


def downgrade() -> None:
    op.drop_index("ix_idx_reference_identifier", table_name="idx_reference")

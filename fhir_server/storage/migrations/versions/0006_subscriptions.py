"""Subscription delivery outbox and the client that created each Subscription.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PkType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "subscription_outbox",
        sa.Column("id", PkType, primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.String(64), nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_subscription_outbox"),
        sa.UniqueConstraint(
            "subscription_id",
            "res_type",
            "res_id",
            "version_id",
            name="uq_subscription_outbox_key",
        ),
    )
    op.create_index("ix_subscription_outbox_due", "subscription_outbox", ["status", "next_attempt"])
    op.create_table(
        "subscription_owners",
        sa.Column("subscription_id", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subscription_id", name="pk_subscription_owners"),
    )


def downgrade() -> None:
    op.drop_table("subscription_owners")
    op.drop_table("subscription_outbox")

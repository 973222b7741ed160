"""Current resources and their append-only version history.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PkType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("res_pk", PkType, primary_key=True, autoincrement=True),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("res_pk", name="pk_resources"),
        sa.UniqueConstraint("res_type", "res_id", name="uq_resources_type_id"),
    )
    op.create_index("ix_resources_type_updated", "resources", ["res_type", "last_updated"])
    op.create_table(
        "resource_versions",
        sa.Column("seq", PkType, primary_key=True, autoincrement=True),
        sa.Column("res_pk", PkType, nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_resource_versions"),
        sa.UniqueConstraint("res_pk", "version_id", name="uq_resource_versions_pk_version"),
    )
    op.create_index("ix_resource_versions_type_seq", "resource_versions", ["res_type", "seq"])
    op.create_index("ix_resource_versions_updated", "resource_versions", ["last_updated"])
    op.create_index(
        "ix_resource_versions_type_id", "resource_versions", ["res_type", "res_id", "version_id"]
    )


def downgrade() -> None:
    op.drop_table("resource_versions")
    op.drop_table("resources")

"""Append-only audit trail (AuditEvent).

``audit_events`` holds each AuditEvent's JSON with a few indexed columns;
``audit_event_entities`` one row per resource an event names. Both refuse UPDATE and DELETE
through triggers (PostgreSQL: a plpgsql function, also on TRUNCATE; SQLite: RAISE(ABORT)),
so not even a bug or a hand-written statement in the application's role can rewrite history.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PkType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLES = ("audit_events", "audit_event_entities")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", PkType, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client", sa.String(255), nullable=False),
        sa.Column("subtype", sa.String(32), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("entity", sa.String(255)),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("event_id", name="uq_audit_events_event_id"),
    )
    op.create_index("ix_audit_events_recorded", "audit_events", ["recorded"])
    op.create_index("ix_audit_events_client", "audit_events", ["client", "id"])
    op.create_index("ix_audit_events_outcome", "audit_events", ["outcome", "id"])
    op.create_index("ix_audit_events_subtype", "audit_events", ["subtype", "id"])
    op.create_table(
        "audit_event_entities",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(255), nullable=False),
    )
    op.create_index("ix_audit_event_entities_reference", "audit_event_entities", ["reference"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'the audit trail is append-only (% on %)', "
            "TG_OP, TG_TABLE_NAME; END $$"
        )
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
            )
    else:
        for table in TABLES:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
                )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")

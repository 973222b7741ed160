"""Alembic environment: runs on the connection handed over by fhir_server.storage.migrate."""

from __future__ import annotations

from alembic import context

from fhir_server.storage.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through migrate.upgrade()
    raise RuntimeError("run migrations through 'ivz db upgrade'")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()

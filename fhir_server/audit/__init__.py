"""The audit trail: every HTTP request recorded as an R4 AuditEvent (docs/audit.md)."""

from __future__ import annotations

from fhir_server.audit.writer import AuditWriter
from fhir_server.settings import Settings
from fhir_server.storage.database import Database


def start_writer(db: Database, settings: Settings) -> AuditWriter:
    """The process's background writer, configured from ``IVZ_AUDIT_*``."""
    return AuditWriter(
        db,
        batch_size=settings.audit_batch_size,
        interval=settings.audit_flush_ms / 1000,
        capacity=settings.audit_queue_size,
        put_timeout=settings.audit_queue_timeout_s,
    )

"""Keeps AuditEvents out of the generic resource store, whatever the write path.

The REST routes of ``audit/api.py`` answer 405 to direct writes; this hook refuses the same
writes when they come as Bundle entries, so a client can never plant an "AuditEvent" that
looks like part of the trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fhir_server.fhir.outcomes import FhirError
from fhir_server.service.hooks import Hooks

if TYPE_CHECKING:
    from fhir_server.service.resources import Unit
    from fhir_server.storage.repository import StoredVersion


def register(hooks: Hooks) -> None:
    """Refuse every write of an AuditEvent through the service layer."""
    hooks.on_before("AuditEvent", _refuse)


def _refuse(
    unit: Unit, resource: dict[str, Any], current: StoredVersion | None, others: Sequence[Any]
) -> dict[str, Any]:
    raise FhirError(
        405, "not-supported", "AuditEvents are written by the server only (the audit trail)"
    )

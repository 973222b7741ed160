"""Operation routes: see fhir_server/api/operations.py and docs/pathway.md."""

from __future__ import annotations

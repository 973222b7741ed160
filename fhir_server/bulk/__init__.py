"""FHIR Bulk Data export (``$export``, jobs, NDJSON files) and ``Patient/$everything``."""

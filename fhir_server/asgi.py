"""ASGI entry point for uvicorn and other servers: ``fhir_server.asgi:app``."""

from fhir_server.app import create_app

app = create_app()

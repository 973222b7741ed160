"""The URLs that tokens name: the token endpoint (issuer) and the FHIR base (audience)."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

from fhir_server.api.rest import base_url
from fhir_server.settings import Settings

TOKEN_PATH = "/auth/token"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def token_url(request: Request) -> str:
    """``IVZ_AUTH_ISSUER``, else the server's origin (as configured or addressed) + /auth/token."""
    settings: Settings = request.app.state.settings
    if settings.auth_issuer:
        return settings.auth_issuer
    return origin_of(base_url(request)) + TOKEN_PATH


def audience(request: Request) -> str:
    """``IVZ_AUTH_AUDIENCE``, else the FHIR base URL."""
    settings: Settings = request.app.state.settings
    return settings.auth_audience or base_url(request)

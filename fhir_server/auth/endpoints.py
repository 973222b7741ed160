"""``POST /auth/token`` (client_credentials + private_key_jwt) and the SMART discovery document.

OAuth errors are JSON per RFC 6749 §5.2, not OperationOutcomes: token clients are OAuth
libraries and expect that shape.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from fhir_server.api.http import read_body
from fhir_server.auth import scopes
from fhir_server.auth.assertion import AssertionRejected, JwksCache, authenticate
from fhir_server.auth.principal import Principal
from fhir_server.auth.tokens import ServerKey, load_key, mint
from fhir_server.auth.urls import TOKEN_PATH, audience, token_url
from fhir_server.fhir.outcomes import FhirError
from fhir_server.settings import Settings

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_FORM_BYTES = 64 * 1024


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description}, status, headers=_NO_STORE
    )


async def server_key(request: Request) -> ServerKey:
    """The signing key, loaded (or created) once per process."""
    key: ServerKey | None = getattr(request.app.state, "auth_key", None)
    if key is None:
        key = await run_in_threadpool(load_key, request.app.state.db)
        request.app.state.auth_key = key
    return key


def jwks_cache(request: Request) -> JwksCache:
    """Fetched JWKS (clients' ``--jwks-url``, the external issuer), shared per process."""
    cache: JwksCache | None = getattr(request.app.state, "auth_jwks_cache", None)
    if cache is None:
        settings: Settings = request.app.state.settings
        cache = JwksCache(settings.auth_jwks_cache_seconds, {})
        request.app.state.auth_jwks_cache = cache
    return cache


async def token(request: Request) -> JSONResponse:
    """Exchange a signed client assertion for a short-lived access token."""
    if int(request.headers.get("content-length") or 0) > _MAX_FORM_BYTES:
        return oauth_error(400, "invalid_request", "The request is too large")
    media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return oauth_error(400, "invalid_request", "Use application/x-www-form-urlencoded")
    try:  # the body itself is capped: a chunked request has no Content-Length to check
        raw = await read_body(request, _MAX_FORM_BYTES)
    except FhirError:
        return oauth_error(400, "invalid_request", "The request is too large")
    fields = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    if fields.get("grant_type") != "client_credentials":
        return oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported")
    assertion = fields.get("client_assertion")
    if fields.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
        return oauth_error(400, "invalid_request", "A jwt-bearer client_assertion is required")
    requested = fields.get("scope", "").split()
    if not requested:
        return oauth_error(400, "invalid_scope", "A scope is required")
    settings: Settings = request.app.state.settings
    try:
        client = await run_in_threadpool(
            authenticate, request.app.state.db, assertion, token_url(request), jwks_cache(request)
        )
    except AssertionRejected as exc:
        return oauth_error(401, "invalid_client", str(exc))
    if fields.get("client_id") not in (None, client.client_id):
        return oauth_error(401, "invalid_client", "The client assertion was not accepted")
    granted = scopes.grant(requested, client.scopes)
    if not granted:
        return oauth_error(400, "invalid_scope", "None of the requested scopes can be granted")
    principal = Principal(client.client_id, client.kind, tuple(granted), client.attributes)
    key = await server_key(request)
    lifetime = settings.auth_token_lifetime
    access_token = mint(key, principal, token_url(request), audience(request), lifetime)
    body = {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": lifetime,
        "scope": " ".join(granted),
    }
    return JSONResponse(body, headers=_NO_STORE)


async def jwks(request: Request) -> JSONResponse:
    """The public key that signs access tokens."""
    key = await server_key(request)
    return JSONResponse({"keys": [key.public_jwk()]})


async def smart_configuration(request: Request) -> JSONResponse:
    """SMART App Launch discovery, for backend services (client-confidential-asymmetric)."""
    url = token_url(request)
    return JSONResponse(
        {
            "issuer": url,
            "jwks_uri": url.removesuffix(TOKEN_PATH) + "/auth/jwks",
            "token_endpoint": url,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": ["system/*.cruds", "system/*.rs", "system/*.read"],
            "capabilities": ["client-confidential-asymmetric", "permission-v2", "permission-v1"],
        }
    )


def routes(base_path: str) -> list[Route]:
    """Open routes of authorization; placed before the FHIR routes (``/fhir/.well-known``)."""
    return [
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route("/auth/jwks", jwks, methods=["GET"]),
        Route("/.well-known/smart-configuration", smart_configuration, methods=["GET"]),
        Route(base_path + "/.well-known/smart-configuration", smart_configuration, methods=["GET"]),
    ]

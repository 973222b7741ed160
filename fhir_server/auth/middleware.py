"""Every request but the open ones needs a valid access token whose scopes cover it.

A pure ASGI middleware rather than a route dependency: it sees every route (FHIR, operations,
``/hl7v2``, ``/ingest/insurer``, ``/report/*``) including those added later, and a route
cannot forget it. The principal goes to ``request.state.principal`` (None when auth is off).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server.api.http import body_format, parse_resource
from fhir_server.api.render import outcome_response
from fhir_server.auth.endpoints import jwks_cache, server_key
from fhir_server.auth.external import is_external, verify_external
from fhir_server.auth.policy import Need, bundle_needs, missing, needs
from fhir_server.auth.principal import Principal
from fhir_server.auth.tokens import TokenError, verify
from fhir_server.auth.urls import audience, token_url
from fhir_server.fhir.outcomes import FhirError, Issue
from fhir_server.settings import Settings

_REALM = 'Bearer realm="ivz-bridge"'


class AuthMiddleware:
    """Authenticate the bearer token, then check the scopes the request needs."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = None
        if self.settings.auth == "off":
            await self.app(scope, receive, send)
            return
        base_path = self.settings.base_path
        query = scope.get("query_string", b"").decode("latin-1")
        required = needs(scope["method"], scope["path"], query, base_path)
        if required is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        principal = await self._principal(request)
        if isinstance(principal, _Refusal):
            await principal.send(request, scope, receive, send)
            return
        scope["state"]["principal"] = principal
        if scope["method"] == "POST" and scope["path"].rstrip("/") == base_path:
            body = await _read_body(receive, self.settings.max_body_bytes)
            required = required + _entries_needs(request, body, base_path)
            receive = _replay(body, receive)
        lacking = missing(principal.scopes, required)
        if lacking:
            refusal = _Refusal(
                403,
                "forbidden",
                "The access token's scopes do not permit this interaction",
                f'{_REALM}, error="insufficient_scope"',
            )
            await refusal.send(request, scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _principal(self, request: Request) -> Principal | _Refusal:
        header = request.headers.get("authorization", "")
        kind, _, token = header.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return _Refusal(401, "login", "An access token is required", _REALM)
        token = token.strip()
        try:
            if is_external(self.settings, token):
                return await run_in_threadpool(
                    verify_external, self.settings, token, audience(request), jwks_cache(request)
                )
            key = await server_key(request)
            return verify(key, token, token_url(request), audience(request))
        except TokenError as exc:
            challenge = f'{_REALM}, error="invalid_token", error_description="{exc}"'
            return _Refusal(401, "login", str(exc), challenge)


class _Refusal:
    def __init__(self, status: int, code: str, message: str, challenge: str) -> None:
        self.status, self.code, self.message, self.challenge = status, code, message, challenge

    async def send(self, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {"WWW-Authenticate": self.challenge}
        response = outcome_response(request, self.status, [Issue(self.code, self.message)], headers)
        await response(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, at most ``limit + 1`` bytes kept (the route answers 413 beyond that)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        if size <= limit:
            chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _entries_needs(request: Request, body: bytes, base_path: str) -> list[Need]:
    """A Bundle's entries' rights; an unreadable body is left to the route to refuse."""
    try:
        bundle = parse_resource(body, body_format(request))
    except (FhirError, ValueError):
        return []
    return bundle_needs(bundle, base_path)

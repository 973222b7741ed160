"""The HTTP request a write comes from, so that hooks can tell which client created a
Subscription. Read lazily: the auth middleware sets ``request.state.principal`` after this
outer middleware has run, in the same ``scope["state"]`` dict."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

_scope: ContextVar[Scope | None] = ContextVar("ivz_request_scope", default=None)


class RequestScope:
    """Pure ASGI middleware: remembers the request's scope for the duration of the call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _scope.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            _scope.reset(token)


def current_client() -> str | None:
    """The authorised client's id of the current request, if auth put a principal there."""
    scope = _scope.get()
    if scope is None:
        return None
    state: Any = scope.get("state") or {}
    principal = state.get("principal") if isinstance(state, dict) else None
    client = getattr(principal, "client_id", None)
    return str(client) if client else None

"""ASGI middleware that records every request (except ``/healthz``) as an AuditEvent.

Pure ASGI, not ``BaseHTTPMiddleware``: it only watches ``receive``/``send``, so streaming
and the read path's cost stay as they are. The event is built and queued when the response
starts, *before* its status line is sent: a request that cannot be audited (queue full past
its timeout) is answered 503 instead. It must be the outermost middleware, so that requests
refused by authorization (401/403) are recorded too; the principal is read from
``scope["state"]["principal"]`` after the inner application ran.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_server.audit.classify import BUNDLE_SUMMARY, Interaction, bundle_entities, classify
from fhir_server.audit.event import Who, build
from fhir_server.audit.writer import AuditWriter
from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import Issue, operation_outcome
from fhir_server.logging import get_logger
from fhir_server.service.clock import now
from fhir_server.storage.audit import AuditRow

log = get_logger(__name__)

SKIPPED = frozenset({"/healthz"})
#: Request bodies kept for classification (bundles, POST _search) are cut at this size.
MAX_KEPT_BODY = 10 * 1024 * 1024


class AuditMiddleware:
    """Wraps the whole application; the writer is ``app.state.audit`` (set at start-up)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in SKIPPED:
            await self.app(scope, receive, send)
            return
        writer: AuditWriter | None = getattr(scope["app"].state, "audit", None)
        if writer is None:  # not started (tests building the app without lifespan)
            await self.app(scope, receive, send)
            return
        recorder = _Recorder(scope, writer)
        try:
            await self.app(scope, recorder.receive(receive), recorder.send(send))
        except Exception:
            if not recorder.started:  # the error handler outside answers 500
                await recorder.record(500)
            raise


class _Recorder:
    """Per-request state: the kept body, whether the response started, replacement."""

    def __init__(self, scope: Scope, writer: AuditWriter) -> None:
        self.scope = scope
        self.writer = writer
        self.started_at = now()
        self.started = False
        self.replaced = False
        self.location: str | None = None
        settings = scope["app"].state.settings
        self.base_path: str = settings.base_path
        self.auth_on = settings.auth == "on"
        self.durable: bool = settings.audit_durable
        self.durable_timeout: float = settings.audit_queue_timeout_s
        self.body: list[bytes] | None = [] if _keeps_body(scope, self.base_path) else None
        self.kept = 0

    def receive(self, receive: Receive) -> Receive:
        if self.body is None:
            return receive

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "http.request" and self.body is not None:
                chunk: bytes = message.get("body", b"")
                if self.kept + len(chunk) <= MAX_KEPT_BODY:
                    self.body.append(chunk)
                    self.kept += len(chunk)
            return message

        return wrapped

    def send(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.started = True
                if not await self.record(int(message["status"]), message):
                    self.replaced = True
                    await _unavailable(send)
                    return
            elif self.replaced:
                return
            await send(message)

        return wrapped

    async def record(self, status: int, start: Message | None = None) -> bool:
        """Queue this request's event; False when it could not be queued."""
        try:
            if start is not None:
                self.location = _header(start, b"location")
            row = self._row(status)
        except Exception:  # a bug here must not lose the event silently: log it loudly
            log.exception("audit event not built", path=self.scope["path"])
            return False
        if self.durable:
            return await self._durably(row)
        if self.writer.offer(row):
            return True
        return await run_in_threadpool(self.writer.put, row)

    async def _durably(self, row: AuditRow) -> bool:
        """Wait until the event is committed (IVZ_AUDIT_DURABLE): no answered request can be
        lost from the trail by a crash."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def committed() -> None:
            loop.call_soon_threadsafe(_resolve, done)

        if not self.writer.offer_durable(row, committed):
            log.error("audit queue full: request refused")
            return False
        try:
            await asyncio.wait_for(done, self.durable_timeout)
        except TimeoutError:
            log.error("audit event not committed in time: request refused")
            return False
        return True

    def _row(self, status: int) -> AuditRow:
        scope = self.scope
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        fhir_path = _below(path, self.base_path)
        interaction = classify(method, fhir_path, path, query)
        interaction = self._refine(interaction, fhir_path, query)
        if self.location and interaction.subtype in ("create", "update"):
            interaction = _with_location(interaction, self.location)
        target = path + ("?" + query if query else "")
        server = _server_url(scope)
        return build(
            interaction, self._who(), status, self.started_at, now(), method, target, server
        )

    def _refine(self, interaction: Interaction, fhir_path: str | None, query: str) -> Interaction:
        if self.body is None or fhir_path is None:
            return interaction
        body = b"".join(self.body)
        if interaction.subtype == "transaction":
            state: Any = self.scope.get("state") or {}
            known = state.get(BUNDLE_SUMMARY) if isinstance(state, dict) else None
            kind, refs, summary = known if known is not None else bundle_entities(body)
            action = "E"
            return Interaction(kind, action, refs, None, summary)
        if interaction.subtype == "search-type":
            form = body.decode("utf-8", "replace")
            joined = "&".join(p for p in (query, form) if p)
            return Interaction(interaction.subtype, "R", interaction.references, joined)
        return interaction

    def _who(self) -> Who:
        state: Any = self.scope.get("state") or {}
        principal = state.get("principal") if isinstance(state, dict) else None
        client = self.scope.get("client")
        address = client[0] if client else None
        if principal is not None:
            kind = getattr(principal, "kind", None)
            return Who(str(getattr(principal, "client_id", "unknown")), kind, address)
        return Who("unauthenticated" if self.auth_on else "anonymous", None, address)


def _keeps_body(scope: Scope, base_path: str) -> bool:
    if scope["method"] != "POST":
        return False
    below = _below(scope["path"], base_path)
    return below is not None and (below in ("", "/") or below.endswith("/_search"))


def _below(path: str, base_path: str) -> str | None:
    if path == base_path:
        return ""
    if path.startswith(base_path + "/"):
        return path[len(base_path) :]
    return None


def _header(message: Message, name: bytes) -> str | None:
    for key, value in message.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _with_location(interaction: Interaction, location: str) -> Interaction:
    """A create's id is only known from the response's Location header."""
    parts = location.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) < 2:
        return interaction
    ref = f"{parts[-2]}/{parts[-1]}"
    refs = interaction.references if ref in interaction.references else (ref,)
    return Interaction(interaction.subtype, interaction.action, refs, interaction.query)


def _server_url(scope: Scope) -> str:
    server = scope.get("server")
    if server and server[1] is not None:
        return f"{scope.get('scheme', 'http')}://{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://localhost"


async def _unavailable(send: Send) -> None:
    """503 in place of a response that could not be audited."""
    issue = Issue("transient", "The audit trail cannot record this request; retry later")
    body = jsonio.dumps(operation_outcome([issue]))
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/fhir+json;charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"5"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _resolve(done: asyncio.Future[None]) -> None:
    if not done.done():
        done.set_result(None)

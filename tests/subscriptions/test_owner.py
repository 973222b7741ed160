"""The client that creates a Subscription is recorded (for access rules on delivery)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from fhir_server.auth.principal import Principal
from fhir_server.service.hooks import Hooks
from fhir_server.service.resources import ResourceService
from fhir_server.storage import migrate, outbox
from fhir_server.storage.database import Database
from fhir_server.subscriptions import rules
from fhir_server.subscriptions.context import RequestScope
from fhir_server.subscriptions.worker import DeliveryWorker
from tests.conftest import fresh_url
from tests.subscriptions.conftest import subscription


def test_creating_client_is_stored_with_the_subscription(db: Database) -> None:
    hooks = Hooks()
    rules.register(hooks)
    service = ResourceService(db, hooks=hooks)
    # "off": the shared session database must not get a live subscription
    doc = {**subscription("Patient?gender=other", "http://127.0.0.1:9/x"), "status": "off"}
    doc["id"] = uuid.uuid4().hex

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # what the auth middleware does, inside RequestScope; the write runs in a thread
        scope.setdefault("state", {})["principal"] = Principal("ehr-7", "hospital", ())
        await run_in_threadpool(service.update, "Subscription", doc["id"], doc)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def call() -> int:
        transport = httpx.ASGITransport(app=RequestScope(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.put("/")).status_code

    assert asyncio.run(call()) == 204
    with db.read() as conn:
        assert outbox.owner(conn, doc["id"]) == "ehr-7"


def test_a_removed_clients_notifications_are_cancelled_at_delivery(
    store: str, tmp_path: Path
) -> None:
    for url in fresh_url(store, tmp_path, "ivz_owner"):  # its own database: no other rows
        db = Database(url)
        migrate.upgrade(db)
        try:
            _removed_client_is_told_nothing(db)
        finally:
            db.dispose()


def _removed_client_is_told_nothing(db: Database) -> None:
    service = ResourceService(db, hooks=Hooks())
    sub = service.create(
        "Subscription",
        {
            "resourceType": "Subscription",
            "status": "active",
            "reason": "owner removed",
            "criteria": "Observation?status=final",
            "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook"},
        },
    ).stored
    now = datetime.now(UTC)
    with db.write() as conn:
        outbox.record_owner(conn, sub.id, "client-that-was-removed", now)
        outbox.enqueue(conn, [sub.id], "Observation", "gone-1", 1, now)
    notes = DeliveryWorker(service)._claim()
    assert [n.skip for n in notes] == ["client client-that-was-removed was removed"]

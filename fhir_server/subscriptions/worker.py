"""The delivery worker: sends owed notifications from the outbox to rest-hook endpoints.

An asyncio task in each server process. Rows are claimed with a lease in a short write
transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so
several processes never send one row at once; a row is marked delivered only after a 2xx.
A failure is retried with exponential back-off; after ``max_attempts`` the row is given up
and the Subscription gets status ``error`` with the reason in ``Subscription.error``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool

from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError
from fhir_server.logging import get_logger
from fhir_server.polling import PollingWorker, RetryPolicy
from fhir_server.service.resources import ResourceService
from fhir_server.storage import clients, outbox
from fhir_server.storage import repository as repo
from fhir_server.storage.outbox import OutboxRow
from fhir_server.subscriptions.criteria import Spec, read_spec

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Policy(RetryPolicy):
    """When and how often to try (``IVZ_SUBSCRIPTION_*`` settings)."""

    poll_seconds: float = 0.5
    retry_seconds: float = 2.0
    timeout_seconds: float = 10.0
    lease_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class Notification:
    """A claimed row made ready to send, or the reason it will not be sent."""

    row: OutboxRow
    spec: Spec | None
    body: bytes | None
    skip: str | None = None


class DeliveryWorker(PollingWorker):
    name = "subscription-delivery"

    def __init__(self, service: ResourceService, policy: RetryPolicy | None = None) -> None:
        self.service = service
        self.policy = policy or Policy()
        super().__init__(self.policy.poll_seconds)
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=self.policy.timeout_seconds)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._http is not None:
            await self._http.aclose()

    async def run_once(self) -> int:
        """Claim due rows and send them concurrently; the number claimed."""
        ready = await run_in_threadpool(self._claim)
        await asyncio.gather(*(self._send(n) for n in ready))
        return len(ready)

    def _claim(self) -> list[Notification]:
        lease = timedelta(seconds=self.policy.lease_seconds)
        with self.service.db.write() as conn:
            rows = outbox.claim(conn, self.service.clock(), lease, self.policy.batch)
        if not rows:
            return []
        with self.service.db.read() as conn:
            return [self._prepare(conn, row) for row in rows]

    def _prepare(self, conn: Any, row: OutboxRow) -> Notification:
        current = repo.get_current(conn, "Subscription", row.subscription_id)
        if current is None or current.deleted or current.content is None:
            return Notification(row, None, None, "Subscription deleted")
        doc = jsonio.loads_trusted(current.content)
        if doc.get("status") != "active":
            return Notification(row, None, None, f"Subscription is {doc.get('status')}")
        try:
            spec = read_spec(doc)
        except FhirError as exc:
            return Notification(row, None, None, exc.diagnostics)
        owner = outbox.owner(conn, row.subscription_id)
        if owner is not None and clients.get_client(conn, owner) is None:
            # checked at delivery, not only when the match was owed: a removed client is
            # told nothing more, even before the active-subscription cache is rebuilt
            return Notification(row, None, None, f"client {owner} was removed")
        if spec.payload is None:
            return Notification(row, spec, None)
        found = repo.get_version(conn, row.res_type, row.res_id, row.version_id)
        if found is None or found.content is None:
            return Notification(row, None, None, "resource version no longer stored")
        return Notification(row, spec, found.content)

    async def _send(self, note: Notification) -> None:
        row = note.row
        if note.spec is None:
            await run_in_threadpool(self._write, outbox.cancel, row.id, note.skip or "")
            return
        headers = dict(note.spec.headers)
        headers["X-Ivz-Notification"] = f"{row.res_type}/{row.res_id}/_history/{row.version_id}"
        if note.body is not None:
            headers["Content-Type"] = note.spec.payload or "application/fhir+json"
        assert self._http is not None
        try:
            # One deadline for the whole exchange: a receiver trickling bytes must not hold
            # the round (and outlive the lease, so that another worker sends it again).
            answer = await asyncio.wait_for(
                self._http.post(note.spec.endpoint, content=note.body, headers=headers),
                self.policy.timeout_seconds,
            )
            error = None if answer.is_success else f"HTTP {answer.status_code}: {answer.text[:200]}"
        except Exception as exc:  # any fault is a failed attempt, counted: never a silent loop
            error = f"{type(exc).__name__}: {exc}"[:300]
        if error is None:
            await run_in_threadpool(
                self._write, outbox.mark_delivered, row.id, self.service.clock()
            )
            return
        await run_in_threadpool(self._failed, row, error)

    def _write(self, fn: Any, *args: Any) -> None:
        with self.service.db.write() as conn:
            fn(conn, *args)

    def _failed(self, row: OutboxRow, error: str) -> None:
        attempts = row.attempts + 1
        log.warning(
            "subscription delivery failed",
            subscription=row.subscription_id,
            attempts=attempts,
            error=error,
        )
        if attempts < self.policy.max_attempts:
            due = self.service.clock() + self.policy.backoff(attempts)
            self._write(outbox.mark_failed_attempt, row.id, error, due)
            return
        self._write(outbox.mark_failed_attempt, row.id, error, None)
        set_error(self.service, row.subscription_id, f"Delivery failed {attempts} times: {error}")


def set_error(service: ResourceService, subscription_id: str, text: str) -> None:
    """An active Subscription goes to ``error`` with the reason (a new version)."""
    try:
        with service.unit() as unit:
            current = unit.current("Subscription", subscription_id, lock=True)
            if current is None or current.deleted or current.content is None:
                return
            doc = jsonio.loads_trusted(current.content)
            if doc.get("status") != "active":
                return
            failed = {**doc, "status": "error", "error": text[:1000]}
            unit.update(failed, subscription_id, if_match=current.version_id)
    except FhirError as exc:  # changed meanwhile: its writer decides
        log.warning("subscription error not recorded", subscription=subscription_id, error=str(exc))

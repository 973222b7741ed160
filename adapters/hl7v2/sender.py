"""The outbound HL7 v2 sender: transmits queued messages over MLLP and checks each ACK.

An asyncio task in each server process (``IVZ_HL7_OUTBOUND``). Each round claims due rows
with a lease (``fhir_server/service/hl7_outbox.py``: the oldest pending row per endpoint, so
one endpoint's messages go in order), re-reads each row's Endpoint (its current address; a
switched-off or deleted Endpoint cancels the row, a suspended one postpones it), sends the
stored bytes and reads the answer:

- MSA-1 AA (or CA) with MSA-2 = the sent MSH-10: ``delivered``;
- AR (or CR): ``failed`` at once, the ERR text kept (the receiver refuses this message);
- AE (or CE), an MSA-2 that is not our MSH-10, or a reply that is no ACK: a rejection,
  retried with back-off; after ``max_attempts`` rejections the row is ``failed``;
- connection refused, timeout, connection lost: retried with back-off, without limit (the
  message never reached anyone; it stays ``pending`` and visible in ``ivz hl7 outbox``).

A row is marked delivered only after its ACK was checked. If the process dies between the
receiver's ACK and that update, the row is sent again once its lease ran out, with the same
bytes and MSH-10, so a receiver that deduplicates (as our own intake does, by sending
application and facility and MSH-10) does not apply it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool

from adapters.hl7v2.ack import (
    ACCEPT,
    COMMIT_ACCEPT,
    COMMIT_REJECT,
    REJECT,
    AckReply,
    read_ack,
)
from adapters.hl7v2.outbound import is_mllp, parse_address
from adapters.mllp import MLLPClient
from fhir_server.logging import get_logger
from fhir_server.polling import PollingWorker, RetryPolicy
from fhir_server.service.clock import now as utc_now
from fhir_server.service.hl7_outbox import Hl7OutboxService, OutboxRow
from fhir_server.storage.database import Database

log = get_logger(__name__)


#: When and how often to try (``IVZ_HL7_OUTBOUND_*`` settings; max_attempts counts
#: rejections: AE, a wrong MSA-2, no ACK).
Policy = RetryPolicy


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed row and where to send it now, or why it is not sent."""

    row: OutboxRow
    host: str = ""
    port: int = 0
    cancel: str | None = None
    postpone: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """How one attempt ended."""

    delivered: bool
    error: str | None = None
    ack_code: str | None = None
    rejected: bool = False  # the receiver answered (counts towards max_attempts)
    final: bool = False  # do not retry (AR)


def judge(row: OutboxRow, payload: bytes) -> Result:
    """The answer to ``row``'s message: delivered only for AA/CA echoing our MSH-10."""
    try:
        reply: AckReply = read_ack(payload)
    except ValueError as exc:
        return Result(False, f"reply is not an ACK: {exc}", rejected=True)
    code = reply.code.strip().upper()
    detail = "; ".join(e for e in reply.errors if e)
    if reply.acknowledged_id != row.control_id:
        return Result(
            False,
            f"MSA-2 '{reply.acknowledged_id}' does not match the sent MSH-10 '{row.control_id}'"
            f" (MSA-1 {code})",
            code[:2] or None,
            rejected=True,
        )
    if code in (ACCEPT, COMMIT_ACCEPT):
        return Result(True, ack_code=code)
    text = f"{code}: {detail}" if detail else f"{code} without error text"
    return Result(
        False, text, code[:2] or None, rejected=True, final=code in (REJECT, COMMIT_REJECT)
    )


def _prepare(row: OutboxRow, endpoint: dict[str, Any] | None) -> Job:
    """Where to send ``row`` now (its Endpoint's current address), or why not at all."""
    if endpoint is None:
        return Job(row, cancel=f"Endpoint/{row.endpoint_id} was deleted")
    status = endpoint.get("status")
    if status == "suspended":
        return Job(row, postpone=f"Endpoint/{row.endpoint_id} is suspended")
    if status != "active":
        return Job(row, cancel=f"Endpoint/{row.endpoint_id} is {status}")
    address = parse_address(endpoint.get("address"))
    if address is None or not is_mllp(endpoint):
        return Job(row, cancel=f"Endpoint/{row.endpoint_id} is no longer an MLLP endpoint")
    return Job(row, address[0], address[1])


class OutboundSender(PollingWorker):
    """Sends ``hl7_outbox`` rows; ``run_once`` is one round (tests call it directly)."""

    name = "hl7-outbound"

    def __init__(
        self,
        db: Database,
        policy: Policy | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.db = db
        self.policy = policy or Policy()
        self.clock = clock
        self.outbox = Hl7OutboxService(db, clock)
        super().__init__(self.policy.poll_seconds)

    async def run_once(self) -> int:
        """Claim due rows and send them (concurrently across endpoints); the number claimed."""
        jobs = await run_in_threadpool(self._claim)
        await asyncio.gather(*(self._handle(job) for job in jobs))
        return len(jobs)

    def _claim(self) -> list[Job]:
        lease = timedelta(seconds=self.policy.lease_seconds)
        if not self.outbox.anything_due():
            return []
        rows = self.outbox.claim(lease, self.policy.batch)
        if not rows:
            return []
        endpoints = self.outbox.endpoints(row.endpoint_id for row in rows)
        return [_prepare(row, endpoints[row.endpoint_id]) for row in rows]

    async def _handle(self, job: Job) -> None:
        row = job.row
        if job.cancel is not None:
            await run_in_threadpool(self.outbox.cancel, row.id, job.cancel)
            log.warning("hl7 outbound message cancelled", row=row.id, reason=job.cancel)
            return
        if job.postpone is not None:
            due = self.clock() + timedelta(seconds=self.policy.retry_max_seconds)
            await run_in_threadpool(self.outbox.postpone, row.id, due, job.postpone)
            return
        result = await self.send(job)
        await run_in_threadpool(self._record, row, result)

    async def send(self, job: Job) -> Result:
        """One attempt: connect, send the stored bytes, read and judge one ACK."""
        timeout = self.policy.timeout_seconds
        try:
            client = await MLLPClient.connect(job.host, job.port, timeout)
        except (OSError, TimeoutError) as exc:
            return Result(False, f"connect to {job.host}:{job.port} failed: {_text(exc)}")
        try:
            async with client:
                payload = await client.request(job.row.message, timeout)
        except TimeoutError:
            return Result(False, f"no ACK from {job.host}:{job.port} within {timeout:g} s")
        except OSError as exc:  # ConnectionError is an OSError
            return Result(False, f"{job.host}:{job.port}: {_text(exc)}")
        except ValueError as exc:  # an answer that is no MLLP frame (or too large): a rejection
            return Result(False, f"{job.host}:{job.port}: {_text(exc)}", rejected=True)
        return judge(job.row, payload)

    def _record(self, row: OutboxRow, result: Result) -> None:
        if result.delivered:
            self.outbox.delivered(row.id, result.ack_code or "AA")
            log.info("hl7 outbound message delivered", row=row.id, control_id=row.control_id)
            return
        error = result.error or "not delivered"
        attempts = row.attempts + 1
        rejections = row.rejections + (1 if result.rejected else 0)
        give_up = result.final or rejections >= self.policy.max_attempts
        due = None if give_up else self.clock() + self.policy.backoff(attempts)
        self.outbox.failed_attempt(row.id, error, due, result.rejected, result.ack_code)
        log.warning(
            "hl7 outbound message failed" if give_up else "hl7 outbound attempt failed",
            row=row.id,
            control_id=row.control_id,
            attempts=attempts,
            error=error,
        )


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]

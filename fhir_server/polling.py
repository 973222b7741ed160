"""An asyncio task that works off a leased outbox in rounds (subscription delivery, HL7 v2
outbound): rounds back to back while there is work, a pause when a round found none, and a
failed round (the database away for a moment) logged and retried rather than ending it."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta

from fhir_server.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often a worker tries; each worker's settings give its own defaults."""

    poll_seconds: float = 1.0
    retry_seconds: float = 5.0
    retry_max_seconds: float = 600.0
    #: Failures (rejections) before a row is given up.
    max_attempts: int = 6
    #: Connecting, and waiting for the answer, each at most this long.
    timeout_seconds: float = 30.0
    lease_seconds: float = 120.0
    batch: int = 20

    def backoff(self, attempts: int) -> timedelta:
        """Wait after the ``attempts``-th failure: doubled per failure, capped."""
        exponent = min(max(attempts - 1, 0), 30)
        return timedelta(seconds=min(self.retry_seconds * 2**exponent, self.retry_max_seconds))


class PollingWorker(ABC):
    #: Task name, also used in the log line of a failed round.
    name = "worker"

    def __init__(self, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run_once(self) -> int:
        """One round; how many rows it claimed (0: pause before the next)."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop between rows: a claimed, unsent row's lease runs out and it is sent later."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                claimed = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker round failed", worker=self.name)
                claimed = 0
            if claimed == 0:
                await asyncio.sleep(self.poll_seconds)

"""The teams' clinic systems: an in-process MLLP listener on the demo's service and a real
TCP client that sends each message and insists on an AA.

Going over a socket with the project's own MLLP client and listener means the demo covers
framing, the durable inbox and the ACK rules exactly as a clinic connection would.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from types import TracebackType

from adapters.hl7v2.ack import read_ack
from adapters.hl7v2.listener import MLLPThread
from adapters.mllp import MLLPClient
from fhir_server.demo.errors import DemoError
from fhir_server.demo.messages import Message
from fhir_server.service.resources import ResourceService


class ClinicError(DemoError):
    """A message was not accepted (AE/AR or a wrong MSA-2): the demo stops, saying why."""


class Clinic:
    """``with Clinic(service) as clinic: clinic.send(raw)``; counts the ACK codes."""

    def __init__(self, service: ResourceService, timeout: float = 30.0) -> None:
        self._listener = MLLPThread("127.0.0.1", 0, service)
        self._loop = asyncio.new_event_loop()
        self._client: MLLPClient | None = None
        self.timeout = timeout
        self.acks: Counter[str] = Counter()

    def __enter__(self) -> Clinic:
        self._listener.start()
        self._client = self._loop.run_until_complete(
            MLLPClient.connect("127.0.0.1", self._listener.port, self.timeout)
        )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            self._loop.run_until_complete(self._client.close())
        self._loop.close()
        self._listener.stop()

    @property
    def port(self) -> int:
        return self._listener.port

    def send(self, message: Message) -> None:
        """Send one original-mode message; raise unless its ACK is AA for it."""
        assert self._client is not None, "not connected"
        control_id = message.control_id
        answer = self._client.request(message.raw, self.timeout)
        reply = read_ack(self._loop.run_until_complete(answer))
        self.acks[reply.code] += 1
        if reply.code != "AA" or reply.acknowledged_id != control_id:
            detail = "; ".join(reply.errors) or "no error text"
            raise ClinicError(
                f"{control_id}: {reply.code} for MSA-2 '{reply.acknowledged_id}': {detail}"
            )

"""Shared by tests/adapters/hl7v2/test_outbound_*.py: a real MLLP receiver (an asyncio TCP
server with its own framing code, not the project's), a clinic Endpoint, a decided case."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.hl7v2 import outbound
from fhir_server.pathway.rules import pathway_hooks
from fhir_server.pathway.verdict import record_verdict
from fhir_server.service.resources import ResourceService
from fhir_server.storage import hl7_outbox
from fhir_server.storage.database import Database
from fhir_server.storage.hl7_outbox import OutboxRow
from tests.pathway.case_builder import (
    CaseSpec,
    case_resources,
    team_resources,
    verdict_parameters,
    write,
)

CONNECTION_TYPES = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
APPOINTMENT_SYSTEM = "https://ivz-bridge.example/fhir/sid/appointment"
BOOKING_NUMBER = "0A1B2C3D4E5F"
KVNR = "A123456780"  # tests/pathway/case_builder.py
SB, EB = b"\x0b", b"\x1c\x0d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def endpoint(
    endpoint_id: str, port: int, status: str = "active", headers: list[str] | None = None
) -> dict[str, Any]:
    """A clinic system reachable over MLLP, as FHIR configuration data."""
    doc: dict[str, Any] = {
        "resourceType": "Endpoint",
        "id": endpoint_id,
        "status": status,
        "connectionType": {"system": CONNECTION_TYPES, "code": "hl7v2-mllp"},
        "name": "KIS",
        "payloadType": [{"text": "HL7 v2.5.1 ORU^R01"}],
        "payloadMimeType": ["x-application/hl7-v2+er7"],
        "address": f"mllp://127.0.0.1:{port}",
    }
    if headers:
        doc["header"] = headers
    return doc


def clinic_resources(
    key: str,
    port: int,
    *,
    team: str = "team-01",
    endpoint_status: str = "active",
    on_organization: bool = False,
    requester_port: int | None = None,
) -> tuple[CaseSpec, list[dict[str, Any]]]:
    """A team whose HealthcareService (or Organization) names an MLLP Endpoint, and a case
    booked with it, seen and ready for a verdict; ``requester_port``: the referral's
    requester, a hospital, has an MLLP Endpoint too (with MSH-5/MSH-6 given as headers)."""
    spec = CaseSpec(key, team=team)
    resources = team_resources(team)
    owner = resources[0] if on_organization else resources[1]
    owner["endpoint"] = [{"reference": f"Endpoint/ep-{team}"}]
    extra = [endpoint(f"ep-{team}", port, endpoint_status)]
    case = case_resources(spec)
    for res in case:
        if res["resourceType"] == "Appointment":  # the booking number the clinic knows (SCH-1)
            res["identifier"] = [{"system": APPOINTMENT_SYSTEM, "value": BOOKING_NUMBER}]
        if res["id"] == spec.referral and requester_port is not None:
            res["requester"] = {"reference": "Organization/hospital"}
    if requester_port is not None:
        extra.append(
            endpoint("ep-hospital", requester_port, headers=["MSH-5: ORBIS", "MSH-6: KH-NORD"])
        )
        extra.append(
            {
                "resourceType": "Organization",
                "id": "hospital",
                "name": "Klinikum Nord",
                "endpoint": [{"reference": "Endpoint/ep-hospital"}],
            }
        )
    return spec, [*extra, *resources, *case]


def clinic_case(service: ResourceService, key: str, port: int, **kwargs: Any) -> CaseSpec:
    """``clinic_resources`` written through the service, as one transaction."""
    spec, resources = clinic_resources(key, port, **kwargs)
    write(service, resources)
    return spec


def decide(service: ResourceService, spec: CaseSpec, **kwargs: Any) -> str:
    """``$verdict``; the verdict's id."""
    return record_verdict(service, spec.referral, verdict_parameters(**kwargs)).verdict.id


def new_service(db: Database) -> ResourceService:
    hooks = pathway_hooks()
    outbound.register(hooks)
    return ResourceService(db, hooks=hooks)


def outbox_rows(db: Database) -> list[OutboxRow]:
    """Oldest first."""
    with db.read() as conn:
        return list(reversed(hl7_outbox.rows(conn, limit=1000)))


def field_of(message: bytes, segment: str, number: int, occurrence: int = 0) -> str:
    """Raw field ``number`` of the ``occurrence``-th ``segment`` (MSH-n counted as HL7 does)."""
    found = [s for s in message.decode().split("\r") if s.startswith(segment + "|")]
    fields = found[occurrence].split("|")
    index = number - 1 if segment == "MSH" else number
    return fields[index] if index < len(fields) else ""


@dataclass
class Receiver:
    """A clinic's MLLP receiver. ``script`` says how to answer each message in turn (then AA):
    ``AA``, ``AE``, ``AR``, ``wrong-id`` (AA with another MSA-2), ``silent`` (no answer),
    ``close`` (hang up without answering)."""

    script: list[str] = field(default_factory=list)
    got: list[bytes] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                buffer += data
                while SB in buffer and EB in buffer:
                    start = buffer.index(SB)
                    end = buffer.index(EB, start)
                    message, buffer = buffer[start + 1 : end], buffer[end + 2 :]
                    self.got.append(message)
                    how = self.script.pop(0) if self.script else "AA"
                    if how == "close":
                        return
                    if how != "silent":
                        writer.write(SB + ack(message, how) + EB)
                        await writer.drain()
        finally:
            writer.close()

    def control_ids(self) -> list[str]:
        return [field_of(m, "MSH", 10) for m in self.got]


def ack(message: bytes, how: str) -> bytes:
    control = field_of(message, "MSH", 10)
    code = {"wrong-id": "AA"}.get(how, how)
    msa2 = "SOMETHING-ELSE" if how == "wrong-id" else control
    segments = [
        f"MSH|^~\\&|KIS|TEAM-01|IVZ-BRIDGE|IVZ|20261125120000||ACK^R01^ACK|A{control}|P|2.5.1",
        f"MSA|{code}|{msa2}",
    ]
    if code in ("AE", "AR"):
        segments.append(
            f"ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||Patient \\T\\ case {code}"
        )
    return ("\r".join(segments) + "\r").encode()


async def until(check: Callable[[], bool], step: Callable[[], Any], timeout: float = 15) -> bool:
    """Run ``step`` (a sender round) until ``check`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await step()
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


class ThreadedReceiver:
    """The same receiver on its own event loop, for synchronous tests (live server)."""

    def __init__(self, script: list[str] | None = None) -> None:
        self.receiver = Receiver(script or [])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self, port: int = 0) -> ThreadedReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(port), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

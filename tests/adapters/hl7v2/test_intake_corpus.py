"""Every file of the shared HL7 v2 corpus over a real MLLP socket, on SQLite and PostgreSQL.

Supported messages are answered AA and their resources are in the FHIR store; unsupported
ones AR with an ERR that says why (table 0357 200-203); every ``malformed/`` file AE or AR;
the few other samples that lack data HL7 requires (``DEFICIENT``) AE with a data error.
Never a crash or a hang: after each file the same connection must still answer a probe.
Messages that ask for enhanced mode get exactly the ACKs MSH-15/16 ask for (the outcome is
then read from the store when no application ACK is due).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.hl7v2.ack import (
    AckReply,
    accept_ack_wanted,
    application_ack_wanted,
    is_original_mode,
    read_ack,
)
from adapters.hl7v2.inbox import fingerprint
from adapters.hl7v2.listener import Intake, MLLPThread
from adapters.hl7v2.parse import read_header, split_messages
from adapters.hl7v2.types import MessageHeader, V2Error
from adapters.mllp import MLLPClient
from fhir_server.service.messages import MessageService, Status
from fhir_server.service.resources import ResourceService
from fhir_server.storage.database import Database
from fhir_server.storage.messages import StoredMessage
from tests.conftest import SHARED

pytest.importorskip("adapters.hl7v2.convert", reason="waits for the v2 -> FHIR converter")

CORPUS = SHARED / "samples" / "hl7v2"
FILES = sorted(p for p in CORPUS.rglob("*.hl7") if "expected" not in p.parts)
PROBE = b"MSH|^~\\&|PROBE|PROBE|IVZ|IVZ|20261125||ZZZ^Z99|PROBE-%d|P|2.5.1\rPID|1||X\r"
CODES = {Status.PROCESSED: "AA", Status.FAILED: "AE", Status.REJECTED: "AR"}
#: Table 0357: unsupported message type, event, processing id, version.
UNSUPPORTED = {"200", "201", "202", "203"}
#: Table 0357: segment sequence, required field missing, data type, table value.
DATA_ERRORS = {"100", "101", "102", "103"}
#: Files outside malformed/ that lack data HL7 requires: AE with a located data error is right.
DEFICIENT = {
    "ORM_OML/hapi__example_oml_o21_msg11.hl7": "MSH-7 (and MSH-10) empty",
    "other/pyhl7__rep_sample_hl7.hl7": "an ORU^R01 shell of MSH and PID only, no OBR",
    "outbound/msfc__ObservationBundle-expected.hl7": "MSH-7 empty",
}


@pytest.fixture(scope="module")
def corpus_intake(db: Database) -> Iterator[Intake]:
    intake = Intake(ResourceService(db))
    yield intake
    intake.close()


@pytest.fixture(scope="module")
def corpus_port(corpus_intake: Intake) -> Iterator[int]:
    with MLLPThread("127.0.0.1", 0, corpus_intake) as listener:
        yield listener.port


def _forget_everything(messages: MessageService) -> None:
    """The corpus reuses control ids across unrelated files: judge each file on its own."""
    messages.purge(timedelta(seconds=-60), list(Status))


def _header(raw: bytes) -> MessageHeader | None:
    try:
        return read_header(raw)
    except Exception:
        return None


def _final_status(messages: MessageService, header: MessageHeader) -> str:
    deadline = time.monotonic() + 60
    while True:
        row = messages.find(header.sending_facility, header.sending_application, header.control_id)
        if row is not None and row.status != Status.RECEIVED:
            return row.status
        assert time.monotonic() < deadline, f"{header.control_id} never finished"
        time.sleep(0.02)


async def _exchange(
    client: MLLPClient, raw: bytes, messages: MessageService
) -> tuple[str, list[AckReply]]:
    """Send one message; the outcome code and the ACKs it was due, read in order."""
    header = _header(raw)
    await client.send(raw)
    if header is None or is_original_mode(header):
        reply = read_ack(await client.receive(60))
        return reply.code, [reply]
    replies = []
    if accept_ack_wanted(header, "CA"):
        replies.append(read_ack(await client.receive(60)))
        assert replies[0].code == "CA", replies[0]
    code = CODES[Status(await asyncio.to_thread(_final_status, messages, header))]
    if application_ack_wanted(header, code):
        replies.append(read_ack(await client.receive(60)))
        assert replies[-1].code == code
    return code, replies


def _messages_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    try:
        return split_messages(data) or [data]
    except V2Error:
        return [data]  # unsplittable: the listener must refuse it, not choke on it


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_corpus_file_over_mllp(
    path: Path, corpus_port: int, corpus_intake: Intake, resources: ResourceService
) -> None:
    messages = corpus_intake.messages
    _forget_everything(messages)
    name = str(path.relative_to(CORPUS))
    sent = _messages_of(path)

    async def main() -> list[tuple[bytes, str, list[AckReply]]]:
        results = []
        async with await MLLPClient.connect("127.0.0.1", corpus_port) as client:
            for raw in sent:
                code, replies = await _exchange(client, raw, messages)
                results.append((raw, code, replies))
            probe = PROBE % len(results)
            answer = read_ack(await client.request(probe, 60))  # nothing stray came before it
            assert (answer.code, answer.acknowledged_id) == ("AR", f"PROBE-{len(results)}")
        return results

    for raw, code, replies in asyncio.run(asyncio.wait_for(main(), 300)):
        header = _header(raw)
        for reply in replies:
            assert reply.acknowledged_id == (header.control_id if header else "")
        row = _row_for(messages, raw, header)
        why = [e for r in replies for e in r.errors] or [(row.error if row else None) or "?"]
        if path.parent.name == "malformed":
            assert code in ("AE", "AR"), f"a malformed message was accepted: {code}"
            assert why[0], "no ERR text"
        elif name in DEFICIENT:
            assert code == "AE" and row is not None and row.error_code in DATA_ERRORS, (code, why)
        elif code == "AR":
            assert row is not None and row.error_code in UNSUPPORTED, (row and row.error_code, why)
            assert why[0].strip(), "an AR needs an ERR that says why"
        else:
            assert code == "AA", f"{name}: {code} {why}"
            assert row is not None and row.status == Status.PROCESSED and row.resources
            for ref in row.resources:
                rtype, rid = ref.split("/")[:2]
                assert resources.read(rtype, rid).id == rid


def _row_for(
    messages: MessageService, raw: bytes, header: MessageHeader | None
) -> StoredMessage | None:
    """The stored row of a sent message: by its key, or by content when it has none."""
    if header is not None and header.control_id:
        return messages.find(header.sending_facility, header.sending_application, header.control_id)
    digest = fingerprint(raw, header) if header is not None else hashlib.sha256(raw).hexdigest()
    every = [m for status in Status for m in messages.by_status(status, limit=100_000)]
    return next((m for m in every if m.fingerprint == digest), None)


@pytest.fixture(scope="module")
def resources(corpus_intake: Intake) -> ResourceService:
    return corpus_intake.resources

"""HL7 v2 intake end to end over real sockets, on SQLite and PostgreSQL.

Store before ACK, resends, concurrency, failures and replay, enhanced mode, HTTP and the CLI.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from typer.testing import CliRunner

from adapters.hl7v2 import http as hl7_http
from adapters.hl7v2.ack import AckReply, read_ack
from adapters.hl7v2.cli import app as cli_app
from adapters.hl7v2.convert import convert
from adapters.hl7v2.inbox import Inbox, IntakeSettings
from adapters.hl7v2.listener import Intake, MLLPThread
from adapters.hl7v2.types import Conversion, V2Error
from adapters.hl7v2.worker import Worker
from adapters.mllp import MLLPClient
from fhir_server.service.clock import now
from fhir_server.service.messages import MessageMeta, MessageService, Problem, Status, Stored
from fhir_server.service.resources import ResourceService
from fhir_server.storage.database import Database
from fhir_server.storage.messages import StoredMessage

FACILITY = "KLINIKUM-NORD"
APPLICATION = "KIS"


def adt(
    control_id: str,
    patient: str | None = None,
    *,
    accept: str = "",
    application: str = "",
    message_type: str = "ADT^A01^ADT_A01",
) -> bytes:
    """A plain ADT^A01 (v2.5.1) with its own control id and patient."""
    patient = patient or f"P{control_id}"
    return (
        f"MSH|^~\\&|{APPLICATION}|{FACILITY}|IVZ|ZWEITMEINUNG|20261125083000||{message_type}|"
        f"{control_id}|P|2.5.1|||{accept}|{application}\r"
        "EVN|A01|20261125083000\r"
        f"PID|1||{patient}^^^{FACILITY}&1.2.276.0.76.4.8&ISO^MR||Mustermann^Max||19700101|M|||"
        "Hauptstr. 1^^Berlin^^10115^DEU\r"
        "PV1|1|I|ORTHO^101^1^KLINIKUM-NORD||||12345^Dr. Wirbel^Anna\r"
    ).encode()


def new_id() -> str:
    return uuid.uuid4().hex[:16].upper()


def exchange(port: int, messages: list[bytes], replies: int = 1) -> list[AckReply]:
    """Send each message on one connection and read ``replies`` ACKs after each."""

    async def main() -> list[AckReply]:
        out = []
        async with await MLLPClient.connect("127.0.0.1", port) as client:
            for raw in messages:
                await client.send(raw)
                out += [read_ack(await client.receive(60)) for _ in range(replies)]
        return out

    result: list[AckReply] = asyncio.run(main())
    return result


def stored(messages: MessageService, control_id: str) -> StoredMessage:
    found = messages.find(FACILITY, APPLICATION, control_id)
    assert found is not None, f"message {control_id} is not in the store"
    return found


def assert_present(resources: ResourceService, references: list[str]) -> None:
    assert references, "the message produced no resources"
    for ref in references:
        rtype, rid = ref.split("/")[:2]
        assert resources.read(rtype, rid).id == rid


@pytest.fixture(scope="module")
def resources(db: Database) -> ResourceService:
    convert(adt("WARM-UP"))  # mappings load on first use: keep that out of the lease
    return ResourceService(db)


@pytest.fixture()
def settings() -> IntakeSettings:
    """A short lease, so that crash tests need not wait long for it to run out."""
    return IntakeSettings(lease_seconds=3.0, wait_seconds=20.0, retention_days=0)


@pytest.fixture()
def intake(resources: ResourceService, settings: IntakeSettings) -> Iterator[Intake]:
    current = Intake(resources, settings)
    yield current
    current.close()


@pytest.fixture()
def port(intake: Intake) -> Iterator[int]:
    with MLLPThread("127.0.0.1", 0, intake) as listener:
        yield listener.port


# --- original mode ----------------------------------------------------------------------------


def test_a_supported_message_is_stored_processed_and_answered_aa(
    port: int, intake: Intake, resources: ResourceService
) -> None:
    cid = new_id()
    (ack,) = exchange(port, [adt(cid)])
    assert (ack.code, ack.acknowledged_id, ack.errors) == ("AA", cid, [])
    row = stored(intake.messages, cid)
    assert row.status == Status.PROCESSED and row.attempts == 1 and row.transport == "mllp"
    assert (row.message_type, row.trigger_event, row.version) == ("ADT", "A01", "2.5.1")
    assert_present(resources, row.resources)


def test_a_resend_is_answered_aa_again_and_changes_nothing(
    port: int, intake: Intake, resources: ResourceService
) -> None:
    cid = new_id()
    first, again, third = exchange(port, [adt(cid)] * 3)
    assert [a.code for a in (first, again, third)] == ["AA"] * 3
    assert {a.acknowledged_id for a in (first, again, third)} == {cid}
    row = stored(intake.messages, cid)
    assert row.attempts == 1
    for ref in row.resources:  # still the versions the first copy wrote
        rtype, rid, _, version = ref.split("/")
        assert resources.read(rtype, rid).version_id == int(version)


def test_a_rebuilt_resend_new_line_endings_and_msh7_is_still_a_resend(
    port: int, intake: Intake
) -> None:
    cid = new_id()
    raw = adt(cid)
    rebuilt = raw.replace(b"|20261125083000||", b"|20261125091500||").replace(b"\r", b"\r\n")
    assert rebuilt != raw
    first, again = exchange(port, [raw, rebuilt])
    assert (first.code, again.code) == ("AA", "AA")
    assert stored(intake.messages, cid).attempts == 1


def test_a_different_message_under_a_used_control_id_is_kept_and_answered_ae_205(
    port: int, intake: Intake, resources: ResourceService
) -> None:
    cid = new_id()
    first, other = exchange(port, [adt(cid, "PAT-A"), adt(cid, "PAT-B")])
    assert (first.code, other.code) == ("AA", "AE") and other.acknowledged_id == cid
    assert "already used for a different message" in other.errors[0]
    assert stored(intake.messages, cid).status == Status.PROCESSED  # the first copy is untouched
    (copy,) = [
        m
        for m in intake.messages.by_status(Status.FAILED, limit=100_000)
        if m.error and f"'{cid}'" in m.error
    ]
    assert (copy.control_id, copy.error_code, copy.error_location) == (None, "205", "MSH^1^10")
    ((_, outcome),) = intake.worker.replay([copy.id])  # someone checked it: process it
    assert outcome is not None and outcome.code == "AA"
    assert_present(resources, list(outcome.references))


def test_the_same_message_on_many_connections_at_once_is_applied_once(
    port: int, intake: Intake, resources: ResourceService
) -> None:
    cid = new_id()
    acks = parallel(lambda _: exchange(port, [adt(cid)])[0], 12)
    assert {(a.code, a.acknowledged_id) for a in acks} == {("AA", cid)}
    row = stored(intake.messages, cid)
    assert row.attempts == 1
    for ref in row.resources:
        rtype, rid, _, version = ref.split("/")
        assert resources.read(rtype, rid).version_id == int(version)


def test_many_concurrent_senders_are_all_stored_and_answered(port: int, intake: Intake) -> None:
    senders, each = 16, 8
    ids = [[new_id() for _ in range(each)] for _ in range(senders)]
    results = parallel(lambda n: exchange(port, [adt(cid) for cid in ids[n]]), senders)
    for n, acks in enumerate(results):
        assert [(a.code, a.acknowledged_id) for a in acks] == [("AA", cid) for cid in ids[n]]
    assert all(stored(intake.messages, c).status == Status.PROCESSED for row in ids for c in row)


# --- durability -------------------------------------------------------------------------------


class _Killed(Worker):
    """Holds the message after it was stored (committed, or inside the one transaction that
    stores, applies and records it), then dies without recording anything."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holding = threading.Event()
        self.release = threading.Event()

    def process(self, message_id: int, raw: bytes) -> Any:
        self.holding.set()
        self.release.wait(30)
        raise RuntimeError("worker killed")

    def _apply_in(self, unit: Any, message_id: int, conversion: Any) -> Any:
        return self.process(message_id, b"")


def _killed_intake(resources: ResourceService, settings: IntakeSettings) -> tuple[Intake, _Killed]:
    messages = MessageService(resources.db, lease=timedelta(seconds=settings.lease_seconds))
    worker = _Killed(messages, resources)
    return Intake(resources, settings, worker=worker), worker


def _send_until_killed(
    resources: ResourceService, settings: IntakeSettings, raw: bytes, replies: int
) -> list[bytes]:
    """Send ``raw``; once it is stored, stop the listener hard. What did the sender hear?"""
    dying, worker = _killed_intake(resources, settings)
    heard: list[bytes] = []
    listener = MLLPThread("127.0.0.1", 0, dying).start()

    async def main() -> None:
        async with await MLLPClient.connect("127.0.0.1", listener.port) as client:
            await client.send(raw)
            assert await asyncio.to_thread(worker.holding.wait, 30)
            for _ in range(replies):
                heard.append(await client.receive(10))
            await asyncio.to_thread(listener.stop, 0.0)
            with pytest.raises(ConnectionError):
                await client.receive(10)

    try:
        asyncio.run(main())
    finally:
        worker.release.set()
        dying.close()
    return heard


def test_store_before_ack_a_worker_killed_before_its_commit_loses_nothing(
    resources: ResourceService, settings: IntakeSettings, intake: Intake
) -> None:
    """Original mode stores, applies and records in one commit: killed before it, the
    listener has promised nothing and kept nothing, and the sender's resend is processed."""
    cid = new_id()
    heard = _send_until_killed(resources, settings, adt(cid), replies=0)
    assert heard == []  # no ACK was sent ...
    assert intake.messages.find(FACILITY, APPLICATION, cid) is None  # ... nor anything kept
    with MLLPThread("127.0.0.1", 0, intake) as restarted:
        (ack,) = exchange(restarted.port, [adt(cid)])  # the sender resends
    assert (ack.code, ack.acknowledged_id) == ("AA", cid)
    row = stored(intake.messages, cid)
    assert row.status == Status.PROCESSED and row.attempts == 1
    assert_present(resources, row.resources)


def test_store_before_ack_a_worker_killed_after_a_ca_loses_nothing(
    resources: ResourceService, settings: IntakeSettings, intake: Intake
) -> None:
    """Enhanced mode with a CA commits the message before processing it: a resend after the
    crash finds it ``received`` and processes it."""
    cid = new_id()
    raw = adt(cid, accept="AL", application="AL")
    heard = _send_until_killed(resources, settings, raw, replies=1)
    assert read_ack(heard[0]).code == "CA"  # the commit was promised ...
    assert stored(intake.messages, cid).status == Status.RECEIVED  # ... and the message is kept
    time.sleep(settings.lease_seconds + 0.2)  # the dead worker's lease runs out
    with MLLPThread("127.0.0.1", 0, intake) as restarted:
        acks = exchange(restarted.port, [raw], replies=2)  # the sender resends
    assert [(a.code, a.acknowledged_id) for a in acks] == [("CA", cid), ("AA", cid)]
    row = stored(intake.messages, cid)
    assert row.status == Status.PROCESSED and row.attempts == 2
    assert_present(resources, row.resources)


def test_enhanced_mode_an_accepted_message_is_processed_after_a_crash_without_resend(
    resources: ResourceService, settings: IntakeSettings, intake: Intake
) -> None:
    cid = new_id()
    heard = _send_until_killed(resources, settings, adt(cid, accept="AL", application="AL"), 1)
    assert read_ack(heard[0]).code == "CA"  # the commit was promised before the crash
    with MLLPThread("127.0.0.1", 0, intake):  # its sweep takes over once the lease ran out
        deadline = time.monotonic() + 20
        while stored(intake.messages, cid).status != Status.PROCESSED:
            assert time.monotonic() < deadline, "the stored message was never processed"
            time.sleep(0.1)
    assert_present(resources, stored(intake.messages, cid).resources)


def test_replay_stuck_finishes_what_a_crash_left_behind(
    resources: ResourceService, settings: IntakeSettings, intake: Intake, database_url: str
) -> None:
    cid = new_id()
    raw = adt(cid, accept="AL", application="AL")  # stored and committed before processing
    assert read_ack(_send_until_killed(resources, settings, raw, replies=1)[0]).code == "CA"
    time.sleep(settings.lease_seconds + 0.2)  # the dead worker's lease runs out
    done = CliRunner().invoke(cli_app, ["replay", "--stuck", "--database-url", database_url])
    assert done.exit_code == 0, done.output
    assert stored(intake.messages, cid).status == Status.PROCESSED


class _BrokenStore(MessageService):
    def store(
        self,
        raw: bytes,
        meta: MessageMeta | None,
        transport: str,
        fingerprint: str | None = None,
        *,
        conn: Any = None,
    ) -> Stored:
        raise OperationalError("INSERT", {}, Exception("database is down"))


@pytest.mark.parametrize(("accept", "expected"), [("", "AR"), ("AL", "CE")])
def test_a_message_that_cannot_be_stored_is_not_accepted(
    resources: ResourceService, settings: IntakeSettings, accept: str, expected: str
) -> None:
    broken = Intake(resources, settings, inbox=Inbox(_BrokenStore(resources.db)))
    cid = new_id()
    try:
        with MLLPThread("127.0.0.1", 0, broken) as listener:
            (ack,) = exchange(listener.port, [adt(cid, accept=accept, application=accept)])
    finally:
        broken.close()
    assert (ack.code, ack.acknowledged_id) == (expected, cid)
    assert "could not be stored" in ack.errors[0]
    assert broken.messages.find(FACILITY, APPLICATION, cid) is None


# --- failures, rejects, replay ----------------------------------------------------------------


class _Flaky:
    """A mapping with a bug until ``fixed``."""

    def __init__(self) -> None:
        self.fixed = False

    def __call__(self, raw: bytes) -> Conversion:
        if not self.fixed:
            raise V2Error(
                "no mapping for PV1-3 'ORTHO^101^1'", segment="PV1", sequence=1, field_position=3
            )
        return convert(raw)


@pytest.fixture()
def flaky_port(resources: ResourceService, settings: IntakeSettings) -> Iterator[int]:
    messages = MessageService(resources.db, lease=timedelta(seconds=settings.lease_seconds))
    worker = Worker(messages, resources, converter=_Flaky())
    flaky = Intake(resources, settings, worker=worker)
    with MLLPThread("127.0.0.1", 0, flaky) as listener:
        yield listener.port
    flaky.close()


def test_a_failed_message_is_kept_answered_ae_listed_and_replayed_once_fixed(
    flaky_port: int, intake: Intake, resources: ResourceService, database_url: str
) -> None:
    cid = new_id()
    ack, again = exchange(flaky_port, [adt(cid), adt(cid)])
    for reply in (ack, again):  # the resend hears the same answer; nothing is retried
        assert (reply.code, reply.acknowledged_id) == ("AE", cid)
        assert reply.errors == ["no mapping for PV1-3 'ORTHO^101^1'"]
    row = stored(intake.messages, cid)
    assert (row.status, row.error_location, row.attempts) == (Status.FAILED, "PV1^1^3", 1)

    runner = CliRunner()
    listed = runner.invoke(cli_app, ["failed", "--database-url", database_url, "--limit", "10000"])
    assert listed.exit_code == 0, listed.output
    assert cid in listed.output and "PV1-3" in listed.output

    replayed = runner.invoke(cli_app, ["replay", str(row.id), "--database-url", database_url])
    assert replayed.exit_code == 0, replayed.output
    row = stored(intake.messages, cid)
    assert row.status == Status.PROCESSED and row.error is None and row.attempts == 2
    assert_present(resources, row.resources)


def test_a_bundle_refused_after_writing_leaves_nothing_but_the_failed_message(
    intake: Intake, resources: ResourceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored, applied and recorded in one transaction: when the apply fails after it wrote,
    its savepoint is rolled back and the message is kept as failed in the same commit."""
    from adapters.hl7v2 import worker as worker_module
    from fhir_server.fhir.outcomes import FhirError

    written: list[str] = []

    def apply_then_fail(*args: Any, **kwargs: Any) -> Any:
        results = worker_module.apply.__wrapped__(*args, **kwargs)  # type: ignore[attr-defined]
        written.extend(
            f"{r.stored.resource_type}/{r.stored.id}"
            for r in results
            if r.stored and r.status == 201
        )
        raise FhirError(422, "processing", "a rule refused the bundle after it was written")

    apply_then_fail.__wrapped__ = worker_module.apply  # type: ignore[attr-defined]
    monkeypatch.setattr(worker_module, "apply", apply_then_fail)
    cid = new_id()
    outcome = intake.ingest(adt(cid, patient=f"GONE{cid}"), "mllp")
    assert outcome.code == "AE" and outcome.error is not None
    assert "a rule refused the bundle" in outcome.error.message
    row = stored(intake.messages, cid)
    assert (row.status, row.attempts, row.resources) == (Status.FAILED, 1, [])
    assert written, "the bundle was written before it failed"
    for ref in written:
        rtype, rid = ref.split("/")
        with pytest.raises(FhirError):
            resources.read(rtype, rid)
    monkeypatch.undo()
    again = intake.ingest(adt(cid, patient=f"GONE{cid}"), "mllp")  # a resend changes nothing
    assert (again.code, again.duplicate) == ("AE", True)
    assert stored(intake.messages, cid).status == Status.FAILED


def _version_of(references: list[str], resource_type: str) -> tuple[str, int]:
    (ref,) = [r for r in references if r.startswith(f"{resource_type}/")]
    _, rid, _, version = ref.split("/")
    return rid, int(version)


def test_a_shared_physician_is_written_again_only_when_it_changed(
    intake: Intake, resources: ResourceService
) -> None:
    """The ordering physician of many messages stores no new version (and is not locked)
    while unchanged; changed in between, the next message writes the message's content."""
    doctor = f"D{new_id()}"

    def message(cid: str) -> bytes:
        return adt(cid).replace(b"12345^Dr. Wirbel^Anna", f"{doctor}^Wirbel^Anna".encode())

    outcomes = [intake.ingest(message(new_id()), "mllp") for _ in range(3)]
    assert [o.code for o in outcomes] == ["AA"] * 3
    rid, first = _version_of(list(outcomes[0].references), "Practitioner")
    assert {_version_of(list(o.references), "Practitioner") for o in outcomes} == {(rid, first)}
    assert resources.read("Practitioner", rid).version_id == first

    content = resources.read("Practitioner", rid).content
    assert content is not None
    edited = json.loads(content)
    edited["name"] = [{"family": "Edited"}]
    edited.pop("meta")
    resources.update("Practitioner", rid, edited)
    after = intake.ingest(message(new_id()), "mllp")
    assert after.code == "AA"
    assert _version_of(list(after.references), "Practitioner") == (rid, first + 2)
    restored = resources.read("Practitioner", rid)
    assert restored.content is not None
    assert json.loads(restored.content)["name"] == json.loads(content)["name"]


def test_messages_naming_an_unchanged_physician_do_not_wait_for_its_row_lock(
    intake: Intake, resources: ResourceService
) -> None:
    """Concurrent messages for one physician must not queue on its row (PostgreSQL: SQLite
    has one writer at a time anyway)."""
    if resources.db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time")
    doctor = f"D{new_id()}"

    def message(cid: str) -> bytes:
        return adt(cid).replace(b"12345^Dr. Wirbel^Anna", f"{doctor}^Wirbel^Anna".encode())

    rid, _ = _version_of(list(intake.ingest(message(new_id()), "mllp").references), "Practitioner")
    intake.ingest(message(new_id()), "mllp")  # this process has now sent that content before
    pool = ThreadPoolExecutor(1)
    try:
        with resources.db.write() as holder:  # another transaction holds the physician's row
            holder.exec_driver_sql(
                "SELECT 1 FROM resources WHERE res_type = 'Practitioner' AND res_id = %(rid)s "
                "FOR UPDATE",
                {"rid": rid},
            )
            future = pool.submit(intake.ingest, message(new_id()), "mllp")
            try:
                outcome = future.result(10)
            except TimeoutError:
                outcome = None  # it waited for the lock: released when this block ends
    finally:
        pool.shutdown(wait=True)
    assert outcome is not None, "the message waited for the physician's row lock"
    assert outcome.code == "AA"


def test_err_segment_of_an_ae(flaky_port: int) -> None:
    async def main() -> bytes:
        async with await MLLPClient.connect("127.0.0.1", flaky_port) as client:
            return await client.request(adt(new_id()), 30)

    err = next(s for s in asyncio.run(main()).decode().split("\r") if s.startswith("ERR"))
    fields = err.split("|")
    assert fields[2:5] == ["PV1^1^3", "207^Application internal error^HL70357", "E"]


def test_an_unsupported_message_type_is_rejected_ar(port: int, intake: Intake) -> None:
    cid = new_id()
    (ack,) = exchange(port, [adt(cid, message_type="ZZZ^Z99")])
    assert (ack.code, ack.acknowledged_id) == ("AR", cid)
    assert ack.errors and ack.errors[0]
    assert stored(intake.messages, cid).status == Status.REJECTED


def test_an_unreadable_frame_is_rejected_and_kept_for_audit(port: int, intake: Intake) -> None:
    junk = b"this is not HL7 " + uuid.uuid4().hex.encode()
    (ack,) = exchange(port, [junk])
    assert ack.code == "AR" and ack.acknowledged_id == "" and ack.errors
    digest = hashlib.sha256(junk).hexdigest()
    kept = intake.messages.by_status(Status.REJECTED, limit=100_000)
    assert any(m.fingerprint == digest for m in kept)


def test_an_oversized_message_is_refused_without_storing(
    resources: ResourceService, intake: Intake
) -> None:
    small = Intake(resources, IntakeSettings(max_message_bytes=2000))
    cid = new_id()
    big = adt(cid) + b"NTE|1||" + b"x" * 50_000 + b"\r"
    try:
        with MLLPThread("127.0.0.1", 0, small) as listener:
            ack, after = exchange(listener.port, [big, adt(new_id())])
    finally:
        small.close()
    assert (ack.code, ack.acknowledged_id) == ("AR", cid) and "maximum size" in ack.errors[0]
    assert after.code == "AA"  # the connection is still good
    assert intake.messages.find(FACILITY, APPLICATION, cid) is None


# --- enhanced mode ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "application", "expected"),
    [("AL", "AL", ["CA", "AA"]), ("AL", "ER", ["CA"]), ("NE", "AL", ["AA"]), ("SU", "NE", ["CA"])],
)
def test_enhanced_mode_sends_the_acks_msh15_and_msh16_ask_for(
    port: int, accept: str, application: str, expected: list[str]
) -> None:
    cid, probe = new_id(), new_id()
    messages = [adt(cid, accept=accept, application=application), adt(probe)]
    acks = _all_replies(port, messages)
    assert [(a.code, a.acknowledged_id) for a in acks] == [(c, cid) for c in expected] + [
        ("AA", probe)  # nothing else came before the next message's ACK
    ]


def _all_replies(port: int, messages: list[bytes]) -> list[AckReply]:
    """Send everything, then read replies until the last message's ACK arrives."""

    async def main() -> list[AckReply]:
        out: list[AckReply] = []
        last = messages[-1].split(b"|")[9].decode()
        async with await MLLPClient.connect("127.0.0.1", port) as client:
            for raw in messages:
                await client.send(raw)
            while not out or out[-1].acknowledged_id != last:
                out.append(read_ack(await client.receive(60)))
        return out

    result: list[AckReply] = asyncio.run(main())
    return result


def test_enhanced_mode_failure_gets_ca_then_ae(flaky_port: int) -> None:
    cid = new_id()
    acks = exchange(flaky_port, [adt(cid, accept="AL", application="AL")], replies=2)
    assert [(a.code, a.acknowledged_id) for a in acks] == [("CA", cid), ("AE", cid)]


def test_enhanced_mode_resend_is_accepted_again(port: int) -> None:
    cid = new_id()
    raw = adt(cid, accept="AL", application="AL")
    acks = exchange(port, [raw, raw], replies=2)
    assert [a.code for a in acks] == ["CA", "AA", "CA", "AA"]


# --- retention --------------------------------------------------------------------------------


def test_purge_removes_old_processed_and_rejected_messages_but_keeps_failures(
    resources: ResourceService, database_url: str
) -> None:
    old = MessageService(resources.db, clock=lambda: _days_ago(120))
    ids = {}
    for status in (Status.PROCESSED, Status.REJECTED, Status.FAILED):
        cid = new_id()
        meta = MessageMeta(APPLICATION, FACILITY, cid, "ADT", "A01", "2.5.1")
        message_id = old.store(adt(cid), meta, "file").message.id
        if status == Status.PROCESSED:
            old.processed(message_id, [])
        elif status == Status.REJECTED:
            old.rejected(message_id, _problem())
        else:
            old.failed(message_id, _problem())
        ids[status] = message_id
    fresh = MessageService(resources.db)
    recent = fresh.store(adt(new_id()), None, "file").message.id
    fresh.processed(recent, [])

    runner = CliRunner()
    done = runner.invoke(cli_app, ["purge", "--days", "90", "--database-url", database_url])
    assert done.exit_code == 0, done.output
    assert fresh.get(ids[Status.PROCESSED]) is None and fresh.get(ids[Status.REJECTED]) is None
    assert fresh.get(ids[Status.FAILED]) is not None and fresh.get(recent) is not None
    assert fresh.purge(timedelta(days=90), [Status.FAILED]) >= 1
    assert fresh.get(ids[Status.FAILED]) is None


def _days_ago(days: int) -> datetime:
    return now() - timedelta(days=days)


def _problem() -> Problem:
    return Problem("old problem", "207")


# --- HTTP -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def http_base(resources: ResourceService) -> Iterator[str]:
    """A real uvicorn serving the intake routes the way the app mounts them."""
    app = Starlette(routes=hl7_http.routes())
    app.state.service = resources
    server = uvicorn.Server(
        uvicorn.Config(app, "127.0.0.1", _free_port(), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)
    app.state.hl7_intake.close()


@pytest.mark.parametrize(
    "media_type", ["application/hl7-v2", "x-application/hl7-v2+er7", "text/plain; charset=utf-8"]
)
def test_http_intake_answers_with_the_ack(
    http_base: str, media_type: str, intake: Intake, resources: ResourceService
) -> None:
    cid = new_id()
    with httpx.Client(base_url=http_base, timeout=60) as client:
        first = client.post("/hl7v2", content=adt(cid), headers={"Content-Type": media_type})
        again = client.post("/hl7v2", content=adt(cid), headers={"Content-Type": media_type})
    for response in (first, again):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media_type.split(";")[0])
        reply = read_ack(response.content)
        assert (reply.code, reply.acknowledged_id) == ("AA", cid)
    row = stored(intake.messages, cid)
    assert row.transport == "http" and row.attempts == 1
    assert_present(resources, row.resources)


def test_http_intake_refuses_what_is_not_a_single_hl7_message(http_base: str) -> None:
    with httpx.Client(base_url=http_base, timeout=60) as client:
        wrong_type = client.post(
            "/hl7v2", content=adt(new_id()), headers={"Content-Type": "application/json"}
        )
        assert wrong_type.status_code == 415
        empty = client.post("/hl7v2", content=b"", headers={"Content-Type": "application/hl7-v2"})
        assert empty.status_code == 400
        huge = client.post(
            "/hl7v2", content=b"x" * (5 * 1024 * 1024), headers={"Content-Type": "text/plain"}
        )
        assert huge.status_code == 413
        two = client.post(
            "/hl7v2", content=adt(new_id()) + adt(new_id()), headers={"Content-Type": "text/plain"}
        )
        assert two.status_code == 200 and read_ack(two.content).code == "AR"
        junk = client.post("/hl7v2", content=b"hello", headers={"Content-Type": "text/plain"})
        assert junk.status_code == 200 and read_ack(junk.content).code == "AR"
        quiet = client.post(
            "/hl7v2",
            content=adt(new_id(), accept="NE", application="NE"),
            headers={"Content-Type": "application/hl7-v2"},
        )
        assert quiet.status_code == 204


# --- CLI --------------------------------------------------------------------------------------


def test_cli_ingest_reads_multi_message_files_and_reports(
    tmp_path: Path, database_url: str, intake: Intake
) -> None:
    ids = [new_id() for _ in range(3)]
    bad = new_id()
    path = tmp_path / "several.hl7"
    path.write_bytes(b"\n".join(adt(c).replace(b"\r", b"\n") for c in ids))
    reject = tmp_path / "unsupported.hl7"
    reject.write_bytes(adt(bad, message_type="ZZZ^Z99"))
    runner = CliRunner()
    done = runner.invoke(cli_app, ["ingest", str(path), "--database-url", database_url])
    assert done.exit_code == 0, done.output
    assert "3 messages from 1 files" in done.output
    assert all(stored(intake.messages, c).status == Status.PROCESSED for c in ids)
    mixed = runner.invoke(
        cli_app, ["ingest", str(path), str(reject), "--database-url", database_url]
    )
    assert mixed.exit_code == 1 and "unsupported.hl7" in mixed.output
    assert stored(intake.messages, bad).status == Status.REJECTED


def test_cli_send_checks_msa2_and_exit_codes(tmp_path: Path, port: int) -> None:
    good = tmp_path / "good.hl7"
    good.write_bytes(adt(new_id()) + adt(new_id()))
    runner = CliRunner()
    done = runner.invoke(cli_app, ["send", str(good), "--port", str(port)])
    assert done.exit_code == 0, done.output
    assert _verdicts(done.output, "good.hl7") == ["AA", "AA"]
    unsupported = tmp_path / "unsupported.hl7"
    unsupported.write_bytes(adt(new_id(), message_type="ZZZ^Z99"))
    failed = runner.invoke(cli_app, ["send", str(unsupported), "--port", str(port)])
    assert failed.exit_code == 1 and _verdicts(failed.output, "unsupported.hl7") == ["AR:"]
    enhanced = tmp_path / "enhanced.hl7"
    modes = [("AL", "AL"), ("AL", "NE"), ("AL", "ER"), ("ER", "AL")]
    enhanced.write_bytes(b"".join(adt(new_id(), accept=a, application=b) for a, b in modes))
    done = runner.invoke(cli_app, ["send", str(enhanced), "--port", str(port)])
    assert done.exit_code == 0, done.output
    assert _verdicts(done.output, "enhanced.hl7") == ["AA", "CA", "CA", "AA"]


def _verdicts(output: str, name: str) -> list[str]:
    """What ``ivz hl7 send`` printed per message (the listener's log lines interleave)."""
    return [line.split()[0] for line in output.splitlines() if line.endswith(f" {name}")]


def test_cli_send_reports_an_error_that_follows_a_ca(tmp_path: Path, flaky_port: int) -> None:
    path = tmp_path / "enhanced.hl7"
    path.write_bytes(adt(new_id(), accept="AL", application="ER"))
    done = CliRunner().invoke(cli_app, ["send", str(path), "--port", str(flaky_port)])
    assert done.exit_code == 1 and _verdicts(done.output, "enhanced.hl7") == ["AE:"]
    assert "PV1-3" in done.output


def test_cli_mllp_listener_process_serves_and_stops_cleanly_on_sigterm(
    database_url: str, intake: Intake
) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "adapters.hl7v2.cli", "mllp", "--port", str(port)]
    env = {**os.environ, "IVZ_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([*cmd, "--database-url", database_url], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no listener"
                time.sleep(0.1)
        cid = new_id()
        (ack,) = exchange(port, [adt(cid)])
        assert (ack.code, ack.acknowledged_id) == ("AA", cid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert stored(intake.messages, cid).status == Status.PROCESSED


def test_cli_replay_all_failed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    runner = CliRunner()
    assert runner.invoke(cli_app, ["failed", "--database-url", url]).exit_code == 0
    db = Database(url)
    try:
        resources = ResourceService(db)
        messages = MessageService(db)
        flaky = Worker(messages, resources, converter=_Flaky())
        broken = Intake(resources, worker=flaky)
        ids = [new_id() for _ in range(3)]
        assert {broken.ingest(adt(c)).code for c in ids} == {"AE"}
        broken.close()
        done = runner.invoke(cli_app, ["replay", "--all-failed", "--database-url", url])
        assert done.exit_code == 0, done.output
        assert all(stored(messages, c).status == Status.PROCESSED for c in ids)
        assert runner.invoke(cli_app, ["replay", "--database-url", url]).exit_code != 0
    finally:
        db.dispose()


# --- helpers ----------------------------------------------------------------------------------


def parallel(fn: Callable[[int], Any], n: int) -> list[Any]:
    """``fn(i)`` for i in range(n), each on its own thread; the results in order."""
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, range(n)))


def test_a_database_failure_of_the_one_transaction_path_stores_first_and_answers_aa(
    port: int, intake: Intake, resources: ResourceService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. a deadlock at commit: nothing was written, so the message must not get an AR
    def deadlock(*_: object) -> None:
        raise OperationalError("COMMIT", {}, psycopg.errors.DeadlockDetected("deadlock"))

    monkeypatch.setattr(intake.worker, "take", deadlock)
    cid = new_id()
    (ack,) = exchange(port, [adt(cid)])
    assert (ack.code, ack.acknowledged_id) == ("AA", cid)
    row = stored(intake.messages, cid)
    assert row.status == Status.PROCESSED and row.attempts == 1
    assert_present(resources, row.resources)

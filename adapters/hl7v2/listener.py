"""Store, then acknowledge: the HL7 v2 acknowledgment protocol, and the MLLP listener.

Original mode (MSH-15/16 empty): store + process + record in one commit -> AA/AE/AR. The
sender hears AA only once the message is both stored and applied; if we die before answering,
it resends, and the resend is recognised by its key and processed or answered from the store.
Enhanced mode: store (commit) -> CA as MSH-15 asks -> process -> application ACK as MSH-16
asks, on the same connection. A CA promises only that the message is stored; a crash after
it leaves the message ``received``, and the recovery sweep processes it when its lease ends.
A message that cannot be stored is answered AR (original) or CE (enhanced): resend it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

from adapters.hl7v2.ack import (
    COMMIT_ACCEPT,
    COMMIT_ERROR,
    COMMIT_REJECT,
    REJECT,
    accept_ack_wanted,
    application_ack_wanted,
    build_ack,
    encode_ack,
    is_original_mode,
)
from adapters.hl7v2.inbox import Inbox, IntakeSettings, Outcome, Receipt
from adapters.hl7v2.parse import read_header
from adapters.hl7v2.types import ERR_APPLICATION_INTERNAL, MessageHeader, V2Error
from adapters.hl7v2.worker import Worker, internal_error
from adapters.mllp import Frame, MLLPServer, Reply
from fhir_server.logging import get_logger
from fhir_server.service.messages import MessageService
from fhir_server.service.resources import ResourceService
from fhir_server.storage.database import Database
from fhir_server.storage.failures import DATABASE_FAILURES, is_transient

log = get_logger(__name__)
T = TypeVar("T")


class Intake:
    """Inbox + worker + ACK rules, shared by MLLP, HTTP and file ingest."""

    def __init__(
        self,
        resources: ResourceService,
        settings: IntakeSettings | None = None,
        *,
        inbox: Inbox | None = None,
        worker: Worker | None = None,
    ) -> None:
        self.settings = settings or IntakeSettings()
        self.resources = resources
        self.messages = MessageService(
            resources.db, lease=timedelta(seconds=self.settings.lease_seconds)
        )
        self.inbox = inbox or Inbox(self.messages)
        self.worker = worker or Worker(self.messages, resources, self.settings.base_url)
        self._executor = ThreadPoolExecutor(self.settings.threads, thread_name_prefix="hl7")

    @classmethod
    def open(cls, database: Database | str, settings: IntakeSettings | None = None) -> Intake:
        db = database if isinstance(database, Database) else Database(database)
        return cls(ResourceService(db), settings)

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Blocking storage/conversion work, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def ingest(self, raw: bytes, transport: str = "file") -> Outcome:
        """Store and process one message synchronously (files, replays of dumps)."""
        receipt = self.accept(raw, transport)
        return self.worker.complete(receipt, self.settings.wait_seconds)

    def accept(self, raw: bytes, transport: str) -> Receipt:
        """Store a message; a new one that needs no CA is also processed, in the same commit.

        Only a commit acknowledgment (CA) must be sent between storing and processing; every
        other new message is stored, applied and recorded in one database transaction
        (``Worker.take``), and its receipt carries the outcome. Unreadable headers, known
        keys and messages that want a CA take ``Inbox.accept`` (stored and committed first).
        """
        try:
            header = self.inbox.read_header(raw)
        except Exception:  # the inbox keeps and rejects what it cannot read
            return self.inbox.accept(raw, transport)
        if is_original_mode(header) or not accept_ack_wanted(header, COMMIT_ACCEPT):
            try:
                outcome = self.worker.take(self.inbox, raw, header, transport)
            except DATABASE_FAILURES as exc:  # e.g. a deadlock at commit: nothing was written
                if not is_transient(exc):
                    raise
                log.warning("hl7 one-transaction path failed; storing first", error=str(exc))
                outcome = None
            if outcome is not None:
                return Receipt(raw, header, outcome.message_id, outcome=outcome)
        return self.inbox.accept(raw, transport)

    async def receive(self, raw: bytes, transport: str, reply: Reply) -> Outcome | None:
        """Store, acknowledge and process one message; every ACK goes through ``reply``."""
        try:
            receipt = await self.run(self.accept, raw, transport)
        except Exception:
            log.exception("hl7 message could not be stored", transport=transport)
            await self._store_failed(raw, reply)
            return None
        header = receipt.header
        if header is None:  # unreadable: rejected outright, in original mode (no MSH-15)
            assert receipt.outcome is not None
            await reply(_ack(None, receipt.outcome, raw))
            return receipt.outcome
        enhanced = not is_original_mode(header)
        if enhanced and accept_ack_wanted(header, COMMIT_ACCEPT):
            await reply(encode_ack(build_ack(header, COMMIT_ACCEPT), raw))
        outcome = receipt.outcome or await self._complete(receipt)
        if not enhanced or application_ack_wanted(header, outcome.code):
            await reply(_ack(header, outcome, raw))
        log.info(
            "hl7 message acknowledged",
            transport=transport,
            control_id=header.control_id,
            code=outcome.code,
            duplicate=outcome.duplicate,
            message_id=outcome.message_id,
        )
        return outcome

    async def _complete(self, receipt: Receipt) -> Outcome:
        try:
            return await self.run(self.worker.complete, receipt, self.settings.wait_seconds)
        except Exception:
            log.exception("hl7 processing broke", message_id=receipt.message_id)
            return internal_error(receipt.message_id)

    async def _store_failed(self, raw: bytes, reply: Reply) -> None:
        header = _header_or_none(raw)
        error = V2Error(
            "the message could not be stored; send it again", code=ERR_APPLICATION_INTERNAL
        )
        enhanced = header is not None and not is_original_mode(header)
        code = COMMIT_ERROR if enhanced else REJECT
        if header is None or not enhanced or accept_ack_wanted(header, code):
            await reply(encode_ack(build_ack(header, code, error), raw))

    async def oversized(self, head: bytes, reply: Reply) -> None:
        """A frame above the size limit: refuse it (AR/CR) without storing anything."""
        header = _header_or_none(_whole_segments(head))
        error = V2Error(
            f"message exceeds the maximum size of {self.settings.max_message_bytes} bytes",
            code=ERR_APPLICATION_INTERNAL,
            reject=True,
        )
        log.warning(
            "hl7 oversized message refused", control_id=header.control_id if header else None
        )
        if header is None or is_original_mode(header):
            await reply(_ack(header, Outcome(REJECT, error), head))
        elif accept_ack_wanted(header, COMMIT_REJECT):
            await reply(encode_ack(build_ack(header, COMMIT_REJECT, error), head))

    async def recover(self) -> int:
        return await self.run(self.worker.recover)

    async def purge(self) -> int:
        days = self.settings.retention_days
        if days <= 0:
            return 0
        return await self.run(self.messages.purge, timedelta(days=days))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _ack(header: MessageHeader | None, outcome: Outcome, raw: bytes) -> bytes:
    return encode_ack(build_ack(header, outcome.code, outcome.error), raw)


def _header_or_none(raw: bytes) -> MessageHeader | None:
    try:
        header: MessageHeader = read_header(raw)
    except Exception:
        return None
    return header


def _whole_segments(head: bytes) -> bytes:
    """The head of a truncated frame, cut after its last complete segment."""
    cut = max(head.rfind(b"\r"), head.rfind(b"\n"))
    return head[: cut + 1] if cut > 0 else head


class MLLPListener:
    """An MLLP server feeding an ``Intake``, with a sweep for work a crash left behind."""

    def __init__(
        self, intake: Intake, *, owns_intake: bool = False, sweep_seconds: float | None = None
    ) -> None:
        self.intake = intake
        self.server = MLLPServer(
            self._handle,
            max_message_bytes=intake.settings.max_message_bytes,
            idle_timeout=intake.settings.idle_timeout,
            write_timeout=intake.settings.write_timeout,
        )
        self._owns_intake = owns_intake
        self._sweep_seconds = sweep_seconds or max(1.0, intake.settings.lease_seconds / 2)
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self, host: str, port: int, reuse_port: bool = False) -> None:
        await self.server.start(host, port, reuse_port)
        self._sweeper = asyncio.create_task(self._sweep(), name="hl7-sweep")
        log.info("mllp listener ready", host=host, port=self.port)

    async def _handle(self, frame: Frame, reply: Reply) -> None:
        if frame.oversized:
            await self.intake.oversized(frame.payload, reply)
        else:
            await self.intake.receive(frame.payload, "mllp", reply)

    async def _sweep(self) -> None:
        """Recover abandoned messages now and then; purge by retention once an hour."""
        purged_at = -3600.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.intake.recover()
                if loop.time() - purged_at >= 3600:
                    purged_at = loop.time()
                    gone = await self.intake.purge()
                    if gone:
                        log.info("hl7 messages purged", count=gone)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("hl7 maintenance sweep failed")
            await asyncio.sleep(self._sweep_seconds)

    async def close(self, grace: float = 5.0) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await self.server.close(grace)
        if self._owns_intake:
            self.intake.close()
            self.intake.resources.db.dispose()


async def start_mllp(
    host: str,
    port: int,
    database: Database | str | ResourceService | Intake,
    *,
    settings: IntakeSettings | None = None,
    reuse_port: bool = False,
) -> MLLPListener:
    """Start listening (port 0 picks a free one: read ``.port``); ``await close()`` to stop.

    Hand in the app's ``ResourceService`` to share its engine and search registry when
    running beside uvicorn; a URL or ``Database`` gives the listener its own.
    """
    owns = not isinstance(database, Intake | ResourceService)
    if isinstance(database, Intake):
        intake = database
    elif isinstance(database, ResourceService):
        intake = Intake(database, settings)
    else:
        intake = Intake.open(database, settings)
    listener = MLLPListener(intake, owns_intake=owns)
    await listener.start(host, port, reuse_port)
    return listener


async def serve_mllp(
    host: str,
    port: int,
    database: Database | str | ResourceService | Intake,
    *,
    settings: IntakeSettings | None = None,
    reuse_port: bool = False,
) -> None:
    """Listen until cancelled (the standalone ``ivz hl7 mllp`` / ``ivz mllp`` command)."""
    listener = await start_mllp(host, port, database, settings=settings, reuse_port=reuse_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await listener.close()


class MLLPThread:
    """An MLLP listener on its own event loop in a daemon thread, for synchronous hosts.

    ``with MLLPThread("127.0.0.1", 0, service) as listener: ... listener.port`` -- used by
    tests and by programs whose main thread is not an event loop.
    """

    def __init__(
        self,
        host: str,
        port: int,
        database: Database | str | ResourceService | Intake,
        *,
        settings: IntakeSettings | None = None,
    ) -> None:
        self._args = (host, port, database)
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="mllp")
        self.listener: MLLPListener | None = None

    @property
    def port(self) -> int:
        assert self.listener is not None, "not started"
        return self.listener.port

    def start(self) -> MLLPThread:
        self._thread.start()
        host, port, database = self._args
        future = asyncio.run_coroutine_threadsafe(
            start_mllp(host, port, database, settings=self._settings), self._loop
        )
        self.listener = future.result(30)
        return self

    def stop(self, grace: float = 5.0) -> None:
        if self.listener is not None:
            asyncio.run_coroutine_threadsafe(self.listener.close(grace), self._loop).result(
                grace + 30
            )
            self.listener = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def __enter__(self) -> MLLPThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

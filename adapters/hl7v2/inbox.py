"""The durable, deduplicated inbox: read MSH, store the raw bytes, recognise resends.

Nothing here converts a message. ``accept`` returns once the message is committed (so it may
be acknowledged) and says whether the caller now holds it for processing, or whether its
outcome is already known (unreadable header, or a resend of a finished message).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection

from adapters.hl7v2.ack import ACCEPT, ERROR, REJECT
from adapters.hl7v2.parse import read_header
from adapters.hl7v2.types import ERR_APPLICATION_INTERNAL, MessageHeader, V2Error
from fhir_server.logging import get_logger
from fhir_server.service.messages import MessageMeta, MessageService, Problem, Status, Stored
from fhir_server.storage.messages import StoredMessage

log = get_logger(__name__)

#: Table 0357: the control id was used before, for a different message.
ERR_DUPLICATE_KEY = "205"

HeaderReader = Callable[[bytes], MessageHeader]


class IntakeSettings(BaseSettings):
    """HL7 v2 intake knobs, from ``IVZ_HL7_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="IVZ_HL7_", extra="ignore")

    #: Processed and rejected messages older than this are purged (0: keep forever).
    retention_days: int = 90
    max_message_bytes: int = 4 * 1024 * 1024
    #: MLLP connections silent this long are closed.
    idle_timeout: float = 300.0
    #: An MLLP connection whose peer takes no ACK for this long (stopped reading) is closed.
    write_timeout: float = 30.0
    #: How long a processor may hold a message before another may take it over.
    lease_seconds: float = 120.0
    #: How long a resend waits for its original, still being processed elsewhere.
    wait_seconds: float = 30.0
    #: Threads running storage and conversion for the event loop.
    threads: int = 8
    #: Base URL handed to the transaction processor (fullUrl resolution).
    base_url: str = "http://localhost/fhir"


@dataclass(frozen=True, slots=True)
class Outcome:
    """The application's answer to one message: AA, AE or AR (with the ERR to send)."""

    code: str
    error: V2Error | None = None
    references: tuple[str, ...] = ()
    message_id: int | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Receipt:
    """A stored (or refused) message; ``claimed``: the caller must process it now."""

    raw: bytes
    header: MessageHeader | None
    message_id: int | None
    duplicate: bool = False
    claimed: bool = False
    outcome: Outcome | None = None


def meta_of(header: MessageHeader) -> MessageMeta:
    return MessageMeta(
        sending_application=header.sending_application,
        sending_facility=header.sending_facility,
        control_id=header.control_id,
        message_type=header.message_type,
        trigger_event=header.trigger_event,
        version=header.version,
    )


def problem_of(error: V2Error) -> Problem:
    """A V2Error as the store keeps it, location as ``SEGMENT^sequence^field``."""
    location = None
    if error.segment:
        parts = [error.segment, str(error.sequence or 1)]
        if error.field_position is not None:
            parts.append(str(error.field_position))
        location = "^".join(parts)
    return Problem(error.message, error.code, location)


def error_of(message: StoredMessage) -> V2Error:
    """Rebuild the ERR of a stored failure, so that a resend hears the same answer."""
    segment, sequence, field_position = None, None, None
    if message.error_location:
        parts = message.error_location.split("^")
        segment = parts[0] or None
        sequence = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        field_position = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else None
    return V2Error(
        message.error or "message failed",
        code=message.error_code or ERR_APPLICATION_INTERNAL,
        segment=segment,
        sequence=sequence,
        field_position=field_position,
        reject=message.status == Status.REJECTED,
    )


def outcome_of(message: StoredMessage, duplicate: bool = True) -> Outcome | None:
    """The answer a finished message got; None while it is still being processed."""
    if message.status == Status.PROCESSED:
        return Outcome(ACCEPT, None, tuple(message.resources), message.id, duplicate)
    if message.status in (Status.FAILED, Status.REJECTED):
        code = REJECT if message.status == Status.REJECTED else ERROR
        return Outcome(code, error_of(message), (), message.id, duplicate)
    return None


class Inbox:
    """Reads the header, stores, deduplicates. Every call commits before it returns."""

    def __init__(self, messages: MessageService, reader: HeaderReader = read_header) -> None:
        self.messages = messages
        self.read_header = reader

    def store_new(
        self, raw: bytes, header: MessageHeader, transport: str, conn: Connection
    ) -> Stored:
        """Insert a message in the caller's transaction (``Worker.take``); ``created`` False:
        its key is known, nothing was written, and ``accept`` must answer it."""
        return self.messages.store(
            raw, meta_of(header), transport, fingerprint(raw, header), conn=conn
        )

    def accept(self, raw: bytes, transport: str) -> Receipt:
        """Store ``raw``; raises only when the store itself fails (then nothing is promised)."""
        try:
            header = self.read_header(raw)
        except V2Error as exc:
            return self._unreadable(raw, transport, exc)
        except Exception as exc:  # a reader bug must not take the listener down
            log.exception("hl7 header reader failed")
            return self._unreadable(
                raw, transport, V2Error(f"unreadable message header: {exc}", reject=True)
            )
        meta = meta_of(header)
        stored = self.messages.store(raw, meta, transport, fingerprint(raw, header))
        message = stored.message
        if stored.created:
            return Receipt(raw, header, message.id, claimed=True)
        if not stored.same:
            return self._key_reused(raw, header, meta, transport, message)
        log.info(
            "hl7 resend recognised",
            message_id=message.id,
            control_id=header.control_id,
            status=message.status,
        )
        outcome = outcome_of(message)
        claimed = outcome is None and self.messages.claim(message.id, [Status.RECEIVED])
        return Receipt(raw, header, message.id, True, claimed, outcome)

    def _key_reused(
        self,
        raw: bytes,
        header: MessageHeader,
        meta: MessageMeta,
        transport: str,
        first: StoredMessage,
    ) -> Receipt:
        """Same key, different content: not a resend. Kept as failed, answered AE 205."""
        error = V2Error(
            f"MSH-10 '{header.control_id}' from {header.sending_application}/"
            f"{header.sending_facility} was already used for a different message "
            f"(stored as {first.id} on {first.received_at:%Y-%m-%d %H:%M}); not processed",
            code=ERR_DUPLICATE_KEY,
            segment="MSH",
            sequence=1,
            field_position=10,
        )
        copy = self.messages.store_refused(
            raw, meta, transport, problem_of(error), Status.FAILED, keyed=False
        )
        log.warning(
            "hl7 control id reused for a different message",
            control_id=header.control_id,
            first=first.id,
            kept_as=copy.message.id,
        )
        outcome = Outcome(ERROR, error, (), copy.message.id)
        return Receipt(raw, header, copy.message.id, outcome=outcome)

    def _unreadable(self, raw: bytes, transport: str, error: V2Error) -> Receipt:
        """Answer AR; keep the bytes for audit when the store can take them."""
        rejected = V2Error(
            error.message,
            code=error.code,
            segment=error.segment or "MSH",
            sequence=error.sequence,
            field_position=error.field_position,
            reject=True,
        )
        message_id = None
        try:
            message_id = self.messages.store_refused(
                raw, None, transport, problem_of(rejected)
            ).message.id
        except Exception:
            log.exception("could not keep an unreadable message")
        outcome = Outcome(REJECT, rejected, (), message_id)
        return Receipt(raw, None, message_id, outcome=outcome)


def fingerprint(raw: bytes, header: MessageHeader) -> str:
    """What makes two copies "the same message": the bytes, but for line endings and MSH-7.

    A sender that rebuilds a message to resend it may change its segment separators and its
    timestamp; anything else that differs under the same key is a different message.
    """
    text = raw.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    first, sep, rest = text.strip().partition(b"\r")
    separator = header.delimiters.field.encode("utf-8", errors="replace")
    fields = first.split(separator)
    if len(fields) > 6:
        fields[6] = b""  # MSH-7, date/time of message
    return hashlib.sha256(separator.join(fields) + sep + rest).hexdigest()

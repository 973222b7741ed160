"""Process stored messages: convert, apply through the FHIR service, record the outcome.

The worker only runs messages whose lease it holds, so a message is never applied twice at
once. The bundle goes through ``fhir_server.service.transaction.process``: the same
validation and the same single transaction as a REST transaction. Ids in the bundle are
deterministic (PUT), so applying a message again after a crash rewrites the same resources.

``take`` is the fast path for a new message that needs no commit acknowledgment (CA): store,
apply and record in one database transaction, the apply inside a savepoint so that a refused
bundle still leaves the message stored as failed in the same commit. ``process`` is the path
for a message stored earlier (enhanced mode after its CA, resends, replay, recovery).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from adapters.hl7v2.ack import ACCEPT, ERROR, REJECT
from adapters.hl7v2.convert import apply, convert
from adapters.hl7v2.inbox import Inbox, Outcome, Receipt, outcome_of, problem_of
from adapters.hl7v2.types import ERR_APPLICATION_INTERNAL, Conversion, MessageHeader, V2Error
from fhir_server.fhir.outcomes import FhirError
from fhir_server.logging import get_logger
from fhir_server.service.messages import MessageService, Status
from fhir_server.service.resources import ResourceService, Unit
from fhir_server.service.transaction import EntryResult
from fhir_server.storage.failures import DATABASE_FAILURES, is_transient

log = get_logger(__name__)

Converter = Callable[[bytes], Conversion]
#: Table 0357 "application record locked": the original is still being processed.
ERR_RECORD_LOCKED = "206"
_RETRIES = 2


def _fhir_problem(exc: FhirError) -> str:
    return "; ".join(issue.diagnostics for issue in exc.issues)[:2000]


class Worker:
    """Runs messages through conversion and the FHIR service, one lease at a time."""

    def __init__(
        self,
        messages: MessageService,
        resources: ResourceService,
        base_url: str = "http://localhost/fhir",
        converter: Converter = convert,
    ) -> None:
        self.messages = messages
        self.resources = resources
        self.base_url = base_url
        self.convert = converter

    def complete(self, receipt: Receipt, wait_seconds: float = 30.0) -> Outcome:
        """The outcome of an accepted message: known already, processed now, or awaited."""
        if receipt.outcome is not None:
            return receipt.outcome
        assert receipt.message_id is not None
        if receipt.claimed:
            raw = receipt.raw if not receipt.duplicate else self._raw(receipt.message_id)
            outcome = self.process(receipt.message_id, raw)
            return _as_duplicate(outcome) if receipt.duplicate else outcome
        return self._await(receipt.message_id, wait_seconds)

    def _raw(self, message_id: int) -> bytes:
        stored = self.messages.get(message_id, with_raw=True)
        assert stored is not None, f"message {message_id} vanished"
        return stored.raw

    def _await(self, message_id: int, wait_seconds: float) -> Outcome:
        """A resend whose original is being processed elsewhere: wait for its outcome."""
        deadline = time.monotonic() + wait_seconds
        while True:
            stored = self.messages.get(message_id)
            if stored is None:
                raise LookupError(f"message {message_id} vanished")
            outcome = outcome_of(stored)
            if outcome is not None:
                return outcome
            if self.messages.claim(message_id, [Status.RECEIVED]):
                return _as_duplicate(self.process(message_id, self._raw(message_id)))
            if time.monotonic() > deadline:
                error = V2Error(
                    "the original of this message is still being processed; send it again later",
                    code=ERR_RECORD_LOCKED,
                )
                return Outcome(ERROR, error, (), message_id, True)
            time.sleep(0.05)

    def take(
        self, inbox: Inbox, raw: bytes, header: MessageHeader, transport: str
    ) -> Outcome | None:
        """Store, apply and record a new message in one database transaction.

        Nothing is committed (so nothing may be acknowledged) until all three are done; a
        crash before that leaves nothing, and the sender, who heard no ACK, resends. None: the
        key is known (a resend, or a reused control id) and nothing was written: answer it
        through ``Inbox.accept``.
        """
        conversion, error = self._convert(raw)  # CPU only: before the transaction, not in it
        with self.resources.unit() as unit:
            stored = inbox.store_new(raw, header, transport, unit.conn)
            if not stored.created:
                return None
            message_id = stored.message.id
            results: list[EntryResult] = []
            if conversion is not None:
                results, error = self._apply_in(unit, message_id, conversion)
            if error is not None:
                return self._refused(message_id, error, unit)
            return self._processed(message_id, results, unit)

    def process(self, message_id: int, raw: bytes) -> Outcome:
        """Convert and apply a message whose lease the caller holds; record what happened."""
        conversion, error = self._convert(raw, message_id)
        if conversion is None:
            assert error is not None
            return self._refused(message_id, error)
        try:
            results = self._apply(conversion)
        except V2Error as exc:  # e.g. a patient identity that cannot be matched safely
            return self._refused(message_id, exc)
        except FhirError as exc:
            return self._refused(message_id, V2Error(f"FHIR store refused: {_fhir_problem(exc)}"))
        except Exception as exc:
            log.exception("hl7 bundle could not be applied", message_id=message_id)
            return self._refused(
                message_id, V2Error(f"bundle could not be applied: {type(exc).__name__}")
            )
        return self._processed(message_id, results)

    def _convert(
        self, raw: bytes, message_id: int | None = None
    ) -> tuple[Conversion | None, V2Error | None]:
        try:
            conversion = self.convert(raw)
        except V2Error as exc:
            return None, exc
        except Exception as exc:
            log.exception("hl7 conversion crashed", message_id=message_id)
            return None, V2Error(f"conversion failed: {type(exc).__name__}: {exc}")
        for warning in conversion.warnings:
            log.info("hl7 conversion warning", message_id=message_id, warning=warning)
        return conversion, None

    def _processed(
        self, message_id: int, results: list[EntryResult], unit: Unit | None = None
    ) -> Outcome:
        references = tuple(
            f"{r.stored.resource_type}/{r.stored.id}/_history/{r.stored.version_id}"
            for r in results
            if r.stored is not None
        )
        self.messages.processed(message_id, references, unit.conn if unit else None)
        log.info("hl7 message processed", message_id=message_id, resources=len(references))
        return Outcome(ACCEPT, None, references, message_id)

    def _apply_in(
        self, unit: Unit, message_id: int, conversion: Conversion
    ) -> tuple[list[EntryResult], V2Error | None]:
        """Apply inside ``unit`` under a savepoint: the results, or what went wrong with
        everything the bundle wrote rolled back. Lost races are retried."""
        for attempt in range(_RETRIES + 1):
            savepoint = unit.savepoint()
            try:
                results = apply(self.resources, conversion, self.base_url, unit)
                unit.finish()  # the rules' after-hooks: their failure is the message's
                savepoint.commit()
                return results, None
            except Exception as exc:
                savepoint.rollback()
                _forget(unit)
                retry = (isinstance(exc, FhirError) and exc.status == 409) or is_transient(exc)
                if retry and attempt < _RETRIES:
                    time.sleep(0.02 * (attempt + 1))
                    continue
                if isinstance(exc, V2Error):
                    return [], exc
                if isinstance(exc, FhirError):
                    return [], V2Error(f"FHIR store refused: {_fhir_problem(exc)}")
                log.exception("hl7 bundle could not be applied", message_id=message_id)
                return [], V2Error(f"bundle could not be applied: {type(exc).__name__}")
        raise AssertionError("unreachable")

    def _apply(self, conversion: Conversion) -> list[EntryResult]:
        """Run the bundle; a lost race with a concurrent writer (409, deadlock) is retried."""
        for attempt in range(_RETRIES + 1):
            try:
                return apply(self.resources, conversion, self.base_url)
            except FhirError as exc:
                if exc.status != 409 or attempt == _RETRIES:
                    raise
            except DATABASE_FAILURES as exc:
                if attempt == _RETRIES or not is_transient(exc):
                    raise
            time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")

    def _refused(self, message_id: int, error: V2Error, unit: Unit | None = None) -> Outcome:
        conn = unit.conn if unit is not None else None
        if error.reject:
            self.messages.rejected(message_id, problem_of(error), conn)
            code = REJECT
        else:
            self.messages.failed(message_id, problem_of(error), conn)
            code = ERROR
        log.info("hl7 message not processed", message_id=message_id, code=code, error=error.message)
        return Outcome(code, error, (), message_id)

    def replay(self, message_ids: Iterable[int]) -> list[tuple[int, Outcome | None]]:
        """Process stored messages again (after a mapping fix); None: unknown or busy."""
        done: list[tuple[int, Outcome | None]] = []
        for message_id in message_ids:
            if self.messages.get(message_id) is None or not self.messages.claim(message_id):
                done.append((message_id, None))
                continue
            done.append((message_id, self.process(message_id, self._raw(message_id))))
        return done

    def recover(self) -> int:
        """Process what a crash left stored but unprocessed; how many were taken."""
        taken = 0
        for message_id in self.messages.abandoned():
            if self.messages.claim(message_id, [Status.RECEIVED]):
                self.process(message_id, self._raw(message_id))
                taken += 1
        if taken:
            log.info("hl7 recovered unprocessed messages", count=taken)
        return taken


def _forget(unit: Unit) -> None:
    """What a rolled-back savepoint wrote must not reach the unit's hooks or registry."""
    unit.queued.clear()
    unit.written.clear()
    unit.warnings.clear()
    unit.owed.clear()
    unit.pending_parameters.clear()


def _as_duplicate(outcome: Outcome) -> Outcome:
    return Outcome(outcome.code, outcome.error, outcome.references, outcome.message_id, True)


def internal_error(message_id: int | None) -> Outcome:
    """What to answer when processing broke in an unexpected way (the message is kept)."""
    error = V2Error(
        "internal error while processing; the message is kept and will be retried",
        code=ERR_APPLICATION_INTERNAL,
    )
    return Outcome(ERROR, error, (), message_id)

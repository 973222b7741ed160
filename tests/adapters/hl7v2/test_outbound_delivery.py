"""Outbound ORU^R01 of verdicts: the outbox and the sender against a real MLLP receiver, on
both stores (docs/hl7v2-outbound.md)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from adapters.hl7v2.cli import app as hl7_cli
from adapters.hl7v2.listener import MLLPThread
from adapters.hl7v2.sender import OutboundSender, Policy
from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway.verdict import amend_verdict
from fhir_server.service.resources import ResourceService
from fhir_server.storage import hl7_outbox, migrate
from fhir_server.storage.database import Database
from fhir_server.storage.messages import hl7_messages
from tests.adapters.hl7v2.outbound_helpers import (
    Receiver,
    clinic_case,
    decide,
    endpoint,
    field_of,
    free_port,
    new_service,
    outbox_rows,
    until,
)
from tests.conftest import STORES, fresh_url
from tests.pathway.case_builder import verdict_parameters

#: Retries within a test's patience.
FAST = Policy(
    poll_seconds=0.02,
    retry_seconds=0.05,
    retry_max_seconds=0.2,
    max_attempts=3,
    timeout_seconds=1.0,
    lease_seconds=30,
)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 90))


@pytest.fixture(params=STORES)
def outbound_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh database per test on each store (outbox rows of one test never meet another's)."""
    for url in fresh_url(str(request.param), tmp_path, "ivz_outbound"):
        database = Database(url)
        migrate.upgrade(database)
        yield database
        database.dispose()


@pytest.fixture()
def service(outbound_db: Database) -> ResourceService:
    return new_service(outbound_db)


def statuses(db: Database) -> list[str]:
    return [r.status for r in outbox_rows(db)]


# --- queueing ---------------------------------------------------------------------------------


def test_verdict_is_queued_once_per_endpoint_in_the_verdict_transaction(
    outbound_db: Database, service: ResourceService
) -> None:
    spec = clinic_case(service, "q1", 1)
    verdict_id = decide(service, spec)
    rows = outbox_rows(outbound_db)
    assert len(rows) == 1
    row = rows[0]
    assert (row.res_type, row.res_id, row.version_id) == ("Observation", verdict_id, 1)
    assert (row.endpoint_id, row.address, row.status) == (
        "ep-team-01",
        "mllp://127.0.0.1:1",
        "pending",
    )
    assert field_of(row.message, "MSH", 10) == row.control_id
    assert len(row.control_id) <= 20
    # the unique key: queueing the same version again changes nothing
    with outbound_db.write() as conn:
        hl7_outbox.enqueue(
            conn,
            [
                hl7_outbox.NewMessage(
                    "Observation", verdict_id, 1, "ep-team-01", "x", "ORU^R01", "OTHER", b"x"
                )
            ],
            row.created,
        )
    assert outbox_rows(outbound_db) == rows


def test_refused_verdict_queues_nothing(outbound_db: Database, service: ResourceService) -> None:
    spec = clinic_case(service, "q2", 1)
    decide(service, spec)
    with pytest.raises(FhirError):
        decide(service, spec)  # 409: already decided
    assert len(outbox_rows(outbound_db)) == 1


def test_no_endpoint_or_inactive_endpoint_queues_nothing(
    outbound_db: Database, service: ResourceService
) -> None:
    spec = clinic_case(service, "q3", 1, endpoint_status="off")
    decide(service, spec)
    assert outbox_rows(outbound_db) == []


def test_endpoint_on_the_team_organization_counts(
    outbound_db: Database, service: ResourceService
) -> None:
    spec = clinic_case(service, "q4", 1, on_organization=True)
    decide(service, spec)
    assert [r.endpoint_id for r in outbox_rows(outbound_db)] == ["ep-team-01"]


def test_referring_hospital_with_an_endpoint_is_a_receiver_too(
    outbound_db: Database, service: ResourceService
) -> None:
    spec = clinic_case(service, "q5", 1, requester_port=2)
    decide(service, spec)
    rows = outbox_rows(outbound_db)
    assert [(r.endpoint_id, r.address) for r in rows] == [
        ("ep-team-01", "mllp://127.0.0.1:1"),
        ("ep-hospital", "mllp://127.0.0.1:2"),
    ]
    team, hospital = (r.message for r in rows)
    assert (field_of(team, "MSH", 5), field_of(team, "MSH", 6)) == ("KIS", "TEAM-01")
    assert (field_of(hospital, "MSH", 5), field_of(hospital, "MSH", 6)) == ("ORBIS", "KH-NORD")
    assert rows[0].control_id != rows[1].control_id
    assert field_of(team, "OBX", 5) == field_of(hospital, "OBX", 5)


# --- delivery ---------------------------------------------------------------------------------


def test_receiver_gets_exactly_one_oru_and_aa_marks_it_delivered(
    outbound_db: Database, service: ResourceService
) -> None:
    async def scenario() -> None:
        receiver = await Receiver().start()
        try:
            spec = clinic_case(service, "d1", receiver.port)
            verdict_id = decide(service, spec)
            sender = OutboundSender(outbound_db, FAST)
            assert await until(lambda: statuses(outbound_db) == ["delivered"], sender.run_once)
            for _ in range(5):  # nothing more to send
                await sender.run_once()
            row = outbox_rows(outbound_db)[0]
            assert receiver.control_ids() == [row.control_id]
            message = receiver.got[0]
            assert message == row.message
            assert field_of(message, "MSH", 9) == "ORU^R01^ORU_R01"
            assert field_of(message, "PID", 3).startswith("A123456780^^^&1.2.276.0.76.4.8&ISO")
            assert field_of(message, "OBX", 5).startswith("surgery-not-recommended^")
            assert field_of(message, "OBX", 11) == "F"
            assert (row.attempts, row.ack_code, row.last_error) == (1, "AA", None)
            assert row.delivered_at is not None and row.res_id == verdict_id
        finally:
            await receiver.stop()

    run(scenario())


def test_ae_then_aa_is_delivered_after_a_retry_with_the_same_msh10(
    outbound_db: Database, service: ResourceService
) -> None:
    async def scenario() -> None:
        receiver = await Receiver(["AE"]).start()
        try:
            decide(service, clinic_case(service, "d2", receiver.port))
            sender = OutboundSender(outbound_db, FAST)
            await sender.run_once()
            row = outbox_rows(outbound_db)[0]
            assert (row.status, row.ack_code, row.rejections) == ("pending", "AE", 1)
            assert row.last_error is not None and "Patient & case AE" in row.last_error
            assert await until(lambda: statuses(outbound_db) == ["delivered"], sender.run_once)
            row = outbox_rows(outbound_db)[0]
            assert receiver.control_ids() == [row.control_id, row.control_id]
            assert receiver.got[0] == receiver.got[1] == row.message
            assert (row.attempts, row.ack_code) == (2, "AA")
        finally:
            await receiver.stop()

    run(scenario())


def test_ar_fails_at_once_and_keeps_the_error(
    outbound_db: Database, service: ResourceService
) -> None:
    async def scenario() -> None:
        receiver = await Receiver(["AR"]).start()
        try:
            decide(service, clinic_case(service, "d3", receiver.port))
            sender = OutboundSender(outbound_db, FAST)
            await sender.run_once()
            for _ in range(5):
                await sender.run_once()
                await asyncio.sleep(0.05)
            row = outbox_rows(outbound_db)[0]
            assert (row.status, row.ack_code, row.attempts) == ("failed", "AR", 1)
            assert row.last_error == "AR: Patient & case AR"
            assert len(receiver.got) == 1
        finally:
            await receiver.stop()

    run(scenario())


def test_wrong_msa2_is_not_delivered_and_fails_after_the_limit(
    outbound_db: Database, service: ResourceService
) -> None:
    async def scenario() -> None:
        receiver = await Receiver(["wrong-id"] * 10).start()
        try:
            decide(service, clinic_case(service, "d4", receiver.port))
            sender = OutboundSender(outbound_db, FAST)
            await sender.run_once()
            row = outbox_rows(outbound_db)[0]
            assert row.status == "pending" and row.delivered_at is None
            assert row.last_error is not None
            assert "MSA-2 'SOMETHING-ELSE' does not match the sent MSH-10" in row.last_error
            assert await until(lambda: statuses(outbound_db) == ["failed"], sender.run_once)
            row = outbox_rows(outbound_db)[0]
            assert (row.attempts, row.rejections) == (FAST.max_attempts, FAST.max_attempts)
            assert len(receiver.got) == FAST.max_attempts
        finally:
            await receiver.stop()

    run(scenario())


def test_receiver_down_then_up_is_delivered(
    outbound_db: Database, service: ResourceService
) -> None:
    async def scenario() -> None:
        port = free_port()
        decide(service, clinic_case(service, "d5", port))
        sender = OutboundSender(outbound_db, FAST)
        for _ in range(FAST.max_attempts + 2):  # more than the rejection limit: not given up
            await sender.run_once()
            await asyncio.sleep(0.06)
        row = outbox_rows(outbound_db)[0]
        assert row.status == "pending" and row.attempts >= 2 and row.rejections == 0
        assert row.last_error is not None and "connect to 127.0.0.1" in row.last_error
        receiver = await Receiver().start(port)
        try:
            assert await until(lambda: statuses(outbound_db) == ["delivered"], sender.run_once)
            assert receiver.control_ids() == [row.control_id]
        finally:
            await receiver.stop()

    run(scenario())


def test_silent_or_hanging_up_receiver_is_retried(
    outbound_db: Database, service: ResourceService
) -> None:
    async def scenario() -> None:
        receiver = await Receiver(["silent", "close"]).start()
        try:
            decide(service, clinic_case(service, "d6", receiver.port))
            sender = OutboundSender(outbound_db, FAST)
            await sender.run_once()
            row = outbox_rows(outbound_db)[0]
            assert row.status == "pending" and "no ACK" in (row.last_error or "")
            assert await until(lambda: statuses(outbound_db) == ["delivered"], sender.run_once)
            row = outbox_rows(outbound_db)[0]
            assert row.attempts == 3 and row.rejections == 0
            assert set(receiver.control_ids()) == {row.control_id}
        finally:
            await receiver.stop()

    run(scenario())


def test_crash_between_ack_and_mark_resends_the_same_message_once(
    outbound_db: Database, service: ResourceService, tmp_path: Path
) -> None:
    """The sender dies after the receiver's AA but before recording it: after the lease, the
    next sender sends the same bytes (same MSH-10) again, and only once. Our own intake as the
    receiver deduplicates on MSH-10: it stores and applies the message once."""
    clinic_db = Database(f"sqlite:///{tmp_path / 'clinic.db'}")
    migrate.upgrade(clinic_db)
    policy = dataclasses.replace(FAST, timeout_seconds=10.0, lease_seconds=2.0)

    def clinic_messages() -> int:
        with clinic_db.read() as conn:
            return len(conn.execute(hl7_messages.select()).all())

    with MLLPThread("127.0.0.1", 0, clinic_db) as clinic:

        async def scenario() -> None:
            decide(service, clinic_case(service, "d7", clinic.port))
            crashed = OutboundSender(outbound_db, policy)
            crashed._record = lambda row, result: None  # type: ignore[method-assign]
            assert await crashed.run_once() == 1  # sent and acknowledged, never recorded
            assert statuses(outbound_db) == ["pending"] and clinic_messages() == 1
            restarted = OutboundSender(outbound_db, policy)
            assert await restarted.run_once() == 0  # the lease still holds
            assert await until(lambda: statuses(outbound_db) == ["delivered"], restarted.run_once)
            for _ in range(5):
                await restarted.run_once()
                await asyncio.sleep(0.1)

        run(scenario())
    row = outbox_rows(outbound_db)[0]
    assert (row.status, row.attempts) == ("delivered", 1)
    with clinic_db.read() as conn:
        stored = conn.execute(
            hl7_messages.select().where(hl7_messages.c.control_id == row.control_id)
        ).all()
    assert len(stored) == 1  # the resend was recognised, not stored or applied again
    clinic_db.dispose()


def test_amended_verdict_sends_a_correction_after_the_original(
    outbound_db: Database, service: ResourceService
) -> None:
    async def scenario() -> None:
        receiver = await Receiver(["AE"]).start()
        try:
            spec = clinic_case(service, "d8", receiver.port)
            decide(service, spec)
            sender = OutboundSender(outbound_db, FAST)
            await sender.run_once()  # the original is answered AE: pending
            params = verdict_parameters("surgery-confirmed", activities=(), reason="New MRI")
            amend_verdict(service, spec.referral, params)
            rows = outbox_rows(outbound_db)
            assert [r.version_id for r in rows] == [1, 2]
            assert rows[0].control_id != rows[1].control_id
            assert await until(
                lambda: statuses(outbound_db) == ["delivered", "delivered"], sender.run_once
            )
            # in order: the correction never overtakes the original it corrects
            assert receiver.control_ids() == [rows[0].control_id] * 2 + [rows[1].control_id]
            original, correction = receiver.got[1], receiver.got[2]
            assert field_of(original, "OBX", 11) == "F"
            assert field_of(correction, "OBX", 11) == "C"
            assert field_of(correction, "OBR", 25) == "C"
            assert field_of(correction, "OBX", 5).startswith("surgery-confirmed^")
            assert "NTE|2|L|Amended: New MRI" in correction.decode()
        finally:
            await receiver.stop()

    run(scenario())


def test_endpoint_switched_off_cancels_and_retry_command_requeues(
    outbound_db: Database, service: ResourceService
) -> None:
    async def scenario() -> None:
        receiver = await Receiver().start()
        try:
            decide(service, clinic_case(service, "d9", receiver.port))
            service.update("Endpoint", "ep-team-01", endpoint("ep-team-01", receiver.port, "off"))
            sender = OutboundSender(outbound_db, FAST)
            await sender.run_once()
            row = outbox_rows(outbound_db)[0]
            assert row.status == "cancelled" and "off" in (row.last_error or "")
            assert receiver.got == []
            service.update("Endpoint", "ep-team-01", endpoint("ep-team-01", receiver.port))
            with outbound_db.write() as conn:
                before = hl7_outbox.retry(conn, row.id, row.created)
            assert before is not None and before.status == "cancelled"
            assert await until(lambda: statuses(outbound_db) == ["delivered"], sender.run_once)
            assert receiver.control_ids() == [row.control_id]
            with outbound_db.write() as conn:  # a delivered row is not sent again
                assert hl7_outbox.retry(conn, row.id, row.created) is not None
            assert statuses(outbound_db) == ["delivered"]
        finally:
            await receiver.stop()

    run(scenario())


def test_failed_row_is_listed_and_sent_again_by_the_retry_command(
    outbound_db: Database, service: ResourceService
) -> None:
    cli = CliRunner()
    url = outbound_db.engine.url.render_as_string(hide_password=False)

    async def scenario() -> None:
        receiver = await Receiver(["AR"]).start()
        try:
            decide(service, clinic_case(service, "d10", receiver.port))
            sender = OutboundSender(outbound_db, FAST)
            await sender.run_once()
            assert statuses(outbound_db) == ["failed"]
            row = outbox_rows(outbound_db)[0]
            listed = cli.invoke(hl7_cli, ["outbox", "--status", "failed", "--database-url", url])
            assert listed.exit_code == 0, listed.output
            assert listed.output.split("\t")[:2] == [str(row.id), "failed"]
            assert "AR: Patient & case AR" in listed.output
            retried = cli.invoke(hl7_cli, ["outbox", "--retry", str(row.id), "--database-url", url])
            assert retried.exit_code == 0 and "failed -> pending" in retried.output
            assert await until(lambda: statuses(outbound_db) == ["delivered"], sender.run_once)
            assert receiver.control_ids() == [row.control_id] * 2
            unknown = cli.invoke(hl7_cli, ["outbox", "--retry", "999", "--database-url", url])
            assert unknown.exit_code == 1
        finally:
            await receiver.stop()

    run(scenario())

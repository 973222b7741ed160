"""Durability: a change committed while no worker runs is delivered after a restart, once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import STORES, LiveServer, fresh_url
from tests.subscriptions.conftest import (
    FAST,
    Receiver,
    created,
    eventually,
    outbox_counts,
    patient,
    subscription,
)


@pytest.fixture(params=STORES)
def own_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_url(str(request.param), tmp_path, "ivz_subs")


def test_restart_delivers_the_committed_change_once(own_url: str, receiver: Receiver) -> None:
    family = f"Restart{uuid.uuid4().hex[:8]}"
    quiet = LiveServer(own_url, env={**FAST, "IVZ_SUBSCRIPTION_DELIVERY": "false"}).start()
    try:
        with httpx.Client(base_url=quiet.base, timeout=30) as fhir:
            sub = created(fhir, subscription(f"Patient?family={family}", receiver.url))
            created(fhir, patient(family))
    finally:
        quiet.stop()
    assert outbox_counts(own_url, sub["id"]) == {"pending": 1}
    assert receiver.got == []
    for _ in range(2):  # two restarts: the second must not send it again
        live = LiveServer(own_url, env=FAST).start()
        try:
            assert len(receiver.wait_for(1)) == 1
            assert eventually(lambda: outbox_counts(own_url, sub["id"]) == {"delivered": 1})
            time.sleep(10 * float(FAST["IVZ_SUBSCRIPTION_POLL_SECONDS"]))  # polls that could resend
        finally:
            live.stop()
    assert len(receiver.got) == 1

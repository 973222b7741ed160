"""Subscriptions against a real ``ivz serve`` and a real HTTP receiver, on both stores."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.subscriptions.conftest import (
    Receiver,
    created,
    eventually,
    outbox_counts,
    patient,
    subscription,
)


def _family() -> str:
    return f"Sub{uuid.uuid4().hex[:10]}"


def _status(fhir: httpx.Client, sid: str) -> dict[str, Any]:
    answer = fhir.get(f"/Subscription/{sid}/$status")
    assert answer.status_code == 200, answer.text
    return {
        p["name"]: next(v for k, v in p.items() if k != "name") for p in answer.json()["parameter"]
    }


def test_requested_subscription_becomes_active(fhir: httpx.Client, receiver: Receiver) -> None:
    sub = created(fhir, subscription(f"Patient?family={_family()}", receiver.url))
    assert sub["status"] == "active"
    assert fhir.get(f"/Subscription/{sub['id']}").json()["status"] == "active"


@pytest.mark.parametrize(
    ("criteria", "channel"),
    [
        ("Patient?nonsense=1", {}),
        ("NoSuchType?name=x", {}),
        ("Patient?birthdate=notadate", {}),
        ("Patient?name=x", {"type": "websocket"}),
        ("Patient?name=x", {"header": ["no colon here"]}),
        ("Patient?name=x", {"payload": "text/csv"}),
        ("Patient?name=x", {"endpoint": "ftp://example.org/x"}),
    ],
)
def test_unusable_subscription_is_422(
    fhir: httpx.Client, receiver: Receiver, criteria: str, channel: dict[str, Any]
) -> None:
    doc = subscription(criteria, receiver.url)
    doc["channel"].update(channel)
    answer = fhir.post("/Subscription", json=doc)
    assert answer.status_code == 422, answer.text
    assert answer.json()["resourceType"] == "OperationOutcome"


def test_matching_create_is_posted_with_full_resource_and_headers(
    fhir: httpx.Client, receiver: Receiver, subs_url: str
) -> None:
    family = _family()
    sub = created(
        fhir,
        subscription(
            f"Patient?family={family}&gender=female",
            receiver.url,
            payload="application/fhir+json",
            header=["Authorization: Bearer s3cret", "X-Tenant: ehr-1"],
        ),
    )
    created(fhir, patient(family, gender="male"))  # does not match
    pat = created(fhir, patient(family))
    got = receiver.wait_for(1)
    assert len(got) == 1
    assert got[0].path == "/hook"
    assert got[0].headers["authorization"] == "Bearer s3cret"
    assert got[0].headers["x-tenant"] == "ehr-1"
    assert got[0].headers["content-type"] == "application/fhir+json"
    assert json.loads(got[0].body)["id"] == pat["id"]
    assert eventually(lambda: outbox_counts(subs_url, sub["id"]) == {"delivered": 1})
    assert len(receiver.got) == 1


def test_without_payload_the_notification_is_empty(fhir: httpx.Client, receiver: Receiver) -> None:
    family = _family()
    created(fhir, subscription(f"Patient?family={family}", receiver.url))
    pat = created(fhir, patient(family))
    got = receiver.wait_for(1)
    assert got[0].body == b""
    assert got[0].headers["x-ivz-notification"] == f"Patient/{pat['id']}/_history/1"


def test_update_is_notified_with_its_version(fhir: httpx.Client, receiver: Receiver) -> None:
    family = _family()
    created(fhir, subscription(f"Patient?family={family}", receiver.url))
    pat = created(fhir, patient(family))
    receiver.wait_for(1)
    answer = fhir.put(f"/Patient/{pat['id']}", json={**pat, "birthDate": "1970-01-01"})
    assert answer.status_code == 200, answer.text
    got = receiver.wait_for(2)
    assert [g.headers["x-ivz-notification"][-1] for g in got] == ["1", "2"]


def test_transaction_bundle_entries_are_notified(fhir: httpx.Client, receiver: Receiver) -> None:
    family = _family()
    created(fhir, subscription(f"Patient?family={family}", receiver.url))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(family), "request": {"method": "POST", "url": "Patient"}}
            for _ in range(3)
        ],
    }
    assert fhir.post("", json=bundle).status_code == 200
    assert len(receiver.wait_for(3)) == 3


def test_failed_transaction_notifies_nothing(
    fhir: httpx.Client, receiver: Receiver, subs_url: str
) -> None:
    family = _family()
    sub = created(fhir, subscription(f"Patient?family={family}", receiver.url))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(family), "request": {"method": "POST", "url": "Patient"}},
            {  # If-Match on a resource that does not exist: 412, the whole Bundle rolls back
                "resource": {**patient(family), "id": "sub-missing"},
                "request": {"method": "PUT", "url": "Patient/sub-missing", "ifMatch": 'W/"9"'},
            },
        ],
    }
    assert fhir.post("", json=bundle).status_code >= 400
    assert outbox_counts(subs_url, sub["id"]) == {}
    assert receiver.got == []


def test_failure_is_retried_until_delivered(fhir: httpx.Client, receiver: Receiver) -> None:
    receiver.answers = [500]
    family = _family()
    sub = created(fhir, subscription(f"Patient?family={family}", receiver.url))
    created(fhir, patient(family))
    assert len(receiver.wait_for(1)) == 1
    assert eventually(lambda: _status(fhir, sub["id"]).get("delivered") == 1)
    status = _status(fhir, sub["id"])
    assert status["status"] == "active"
    assert status["pending"] == 0


def test_repeated_failures_put_the_subscription_in_error(
    fhir: httpx.Client, receiver: Receiver
) -> None:
    receiver.answers = [503] * 10
    family = _family()
    sub = created(fhir, subscription(f"Patient?family={family}", receiver.url))
    created(fhir, patient(family))

    def in_error() -> bool:
        return bool(fhir.get(f"/Subscription/{sub['id']}").json()["status"] == "error")

    assert eventually(in_error)
    doc = fhir.get(f"/Subscription/{sub['id']}").json()
    assert "503" in doc["error"]
    status = _status(fhir, sub["id"])
    assert status["failed"] == 1
    assert "503" in status["lastError"]


def test_off_subscription_is_not_notified(
    fhir: httpx.Client, receiver: Receiver, subs_url: str
) -> None:
    family = _family()
    sub = created(fhir, subscription(f"Patient?family={family}", receiver.url))
    assert fhir.put(f"/Subscription/{sub['id']}", json={**sub, "status": "off"}).status_code == 200
    created(fhir, patient(family))
    assert outbox_counts(subs_url, sub["id"]) == {}
    assert receiver.got == []


def test_deleted_subscription_is_not_notified(
    fhir: httpx.Client, receiver: Receiver, subs_url: str
) -> None:
    family = _family()
    sub = created(fhir, subscription(f"Patient?family={family}", receiver.url))
    assert fhir.delete(f"/Subscription/{sub['id']}").status_code in (200, 204)
    created(fhir, patient(family))
    assert outbox_counts(subs_url, sub["id"]) == {}
    assert receiver.got == []

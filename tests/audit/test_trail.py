"""The audit trail itself: searching, reading, append-only, and valid R4 AuditEvents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from fhir_server.fhir.outcomes import FhirError
from fhir_server.service.validation import validate_resource
from fhir_server.storage.database import Database
from tests.api.helpers import unique_id
from tests.audit.helpers import events, only, post


def test_search_by_client(client: httpx.Client) -> None:
    client.get(f"/Patient/{unique_id()}")
    found = events(client, agent="anonymous", _count="5")
    assert found and all(e["agent"][0]["who"]["identifier"]["value"] == "anonymous" for e in found)
    assert events(client, agent="no-such-client") == []


def test_search_by_date(client: httpx.Client) -> None:
    pid = unique_id()
    client.get(f"/Patient/{pid}")
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="seconds")
    earlier = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
    assert only(client, entity=f"Patient/{pid}", date=f"ge{earlier}")
    assert events(client, entity=f"Patient/{pid}", date=f"gt{later}") == []


def test_search_by_outcome(client: httpx.Client) -> None:
    pid = unique_id()
    client.get(f"/Patient/{pid}")
    assert only(client, entity=f"Patient/{pid}", outcome="4")
    assert events(client, entity=f"Patient/{pid}", outcome="0") == []


def test_paging_newest_first(client: httpx.Client) -> None:
    for _ in range(4):  # at least two pages, whatever ran before on this server
        client.get(f"/Patient/{unique_id()}")
    r = client.get("/AuditEvent", params={"_count": "2"})
    page = r.json()
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    second = httpx.get(nxt, headers={"Accept": "application/fhir+json"}).json()
    first_ids = [e["resource"]["id"] for e in page["entry"]]
    second_ids = [e["resource"]["id"] for e in second["entry"]]
    assert len(second_ids) == 2 and not set(first_ids) & set(second_ids)
    recorded = [e["resource"]["recorded"] for e in page["entry"] + second["entry"]]
    assert recorded == sorted(recorded, reverse=True)


def test_unknown_parameter_is_400(client: httpx.Client) -> None:
    assert client.get("/AuditEvent", params={"colour": "red"}).status_code == 400


def test_read_one_event(client: httpx.Client) -> None:
    client.get(f"/Patient/{unique_id()}")
    event = events(client, _count="1")[0]
    r = client.get(f"/AuditEvent/{event['id']}")
    assert r.status_code == 200 and r.json() == event


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/AuditEvent"),
        ("PUT", "/AuditEvent/x"),
        ("PATCH", "/AuditEvent/x"),
        ("DELETE", "/AuditEvent/x"),
        ("DELETE", "/AuditEvent?outcome=0"),
    ],
)
def test_clients_cannot_write(client: httpx.Client, method: str, path: str) -> None:
    r = client.request(
        method,
        path,
        json={"resourceType": "AuditEvent"},
        headers={"Content-Type": "application/fhir+json"},
    )
    assert r.status_code == 405
    assert r.json()["resourceType"] == "OperationOutcome"


def test_refused_write_is_itself_recorded(client: httpx.Client) -> None:
    assert post(client, "/AuditEvent", {"resourceType": "AuditEvent"}).status_code == 405
    event = events(client, outcome="4")[0]
    assert event["outcomeDesc"] == "HTTP 405 for POST /fhir/AuditEvent"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET outcome = '0'",
        "DELETE FROM audit_events",
        "DELETE FROM audit_event_entities",
    ],
)
def test_the_database_refuses_rewrites(client: httpx.Client, db: Database, statement: str) -> None:
    pid = unique_id()
    client.get(f"/Patient/{pid}")  # an event and an entity row exist (triggers fire per row)
    assert only(client, entity=f"Patient/{pid}")
    with pytest.raises(Exception, match="append-only"), db.write() as conn:
        conn.execute(text(statement))


def test_events_are_valid_r4(client: httpx.Client) -> None:
    client.get("/Patient", params={"family": "x"})
    for event in events(client, _count="200"):
        try:
            validate_resource(event, "AuditEvent")
        except FhirError as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"{event['outcomeDesc']}: {exc.issues}")


def test_bundle_entries_cannot_write_audit_events(client: httpx.Client) -> None:
    event = {
        "resourceType": "AuditEvent",
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"requestor": True, "who": {"display": "forger"}}],
        "source": {"observer": {"display": "forger"}},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"resource": event, "request": {"method": "POST", "url": "AuditEvent"}}],
    }
    r = post(client, "", bundle)
    assert r.json()["entry"][0]["response"]["status"].startswith("405")

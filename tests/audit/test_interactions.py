"""Each FHIR interaction leaves exactly one AuditEvent with its subtype, action and entity."""

from __future__ import annotations

import httpx

from tests.api.helpers import patient, unique_id
from tests.audit.helpers import FHIR_JSON, events, only, post, query_of, references, subtype


def _created(client: httpx.Client) -> str:
    r = post(client, "/Patient", patient())
    assert r.status_code == 201, r.text
    pid: str = r.json()["id"]
    return pid


def test_create_names_the_new_resource(client: httpx.Client) -> None:
    pid = _created(client)
    event = only(client, entity=f"Patient/{pid}")
    assert (subtype(event), event["action"], event["outcome"]) == ("create", "C", "0")
    assert references(event) == [f"Patient/{pid}"]


def test_read(client: httpx.Client) -> None:
    pid = _created(client)
    assert client.get(f"/Patient/{pid}").status_code == 200
    event = only(client, entity=f"Patient/{pid}", subtype="read")
    assert (event["action"], event["outcome"]) == ("R", "0")


def test_vread(client: httpx.Client) -> None:
    pid = _created(client)
    assert client.get(f"/Patient/{pid}/_history/1").status_code == 200
    event = only(client, entity=f"Patient/{pid}", subtype="vread")
    assert references(event) == [f"Patient/{pid}/_history/1"]


def test_update(client: httpx.Client) -> None:
    pid = unique_id()
    r = client.put(f"/Patient/{pid}", json=patient(id=pid), headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201, r.text
    event = only(client, entity=f"Patient/{pid}", subtype="update")
    assert (event["action"], event["outcome"]) == ("U", "0")


def test_patch(client: httpx.Client) -> None:
    pid = _created(client)
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    r = client.patch(
        f"/Patient/{pid}", json=ops, headers={"Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 200, r.text
    assert only(client, entity=f"Patient/{pid}", subtype="patch")["action"] == "U"


def test_delete(client: httpx.Client) -> None:
    pid = _created(client)
    assert client.delete(f"/Patient/{pid}").status_code in (200, 204)
    assert only(client, entity=f"Patient/{pid}", subtype="delete")["action"] == "D"


def test_search_records_the_query(client: httpx.Client) -> None:
    family = unique_id()
    assert client.get("/Patient", params={"family": family}).status_code == 200
    event = events(client, subtype="search-type")[0]
    assert event["action"] == "R"
    assert query_of(event) == f"family={family}"


def test_history_instance(client: httpx.Client) -> None:
    pid = _created(client)
    assert client.get(f"/Patient/{pid}/_history").status_code == 200
    assert only(client, entity=f"Patient/{pid}", subtype="history-instance")["action"] == "R"


def test_transaction_lists_its_entries(client: httpx.Client) -> None:
    a, b = unique_id(), unique_id()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(id=i), "request": {"method": "PUT", "url": f"Patient/{i}"}}
            for i in (a, b)
        ],
    }
    assert post(client, "", bundle).status_code == 200
    event = only(client, entity=f"Patient/{b}")
    assert (subtype(event), event["action"]) == ("transaction", "E")
    assert references(event) == [f"Patient/{a}", f"Patient/{b}"]


def test_operation(client: httpx.Client) -> None:
    pid = _created(client)
    r = post(client, f"/Patient/{pid}/$validate", {"resourceType": "Parameters"})
    assert r.status_code < 500
    event = only(client, entity=f"Patient/{pid}", subtype="operation")
    assert event["action"] == "E"

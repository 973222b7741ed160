"""Failed attempts are recorded with a failure outcome; /healthz is not recorded."""

from __future__ import annotations

import httpx

from tests.api.helpers import unique_id
from tests.audit.helpers import events, only, post


def test_not_found_read_is_recorded(client: httpx.Client) -> None:
    pid = unique_id()
    assert client.get(f"/Patient/{pid}").status_code == 404
    event = only(client, entity=f"Patient/{pid}")
    assert (event["outcome"], event["outcomeDesc"].split()[1]) == ("4", "404")


def test_invalid_write_is_recorded(client: httpx.Client) -> None:
    pid = unique_id()
    bad = {"resourceType": "Patient", "id": pid, "birthDate": 12}
    r = client.put(f"/Patient/{pid}", json=bad, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 400
    event = only(client, entity=f"Patient/{pid}")
    assert (event["subtype"][0]["code"], event["outcome"]) == ("update", "4")


def test_unknown_type_is_recorded(client: httpx.Client) -> None:
    assert post(client, "/NoSuchType", {"resourceType": "NoSuchType"}).status_code in (400, 404)
    assert "NoSuchType" in events(client, outcome="4")[0]["outcomeDesc"]


def test_healthz_is_not_recorded(client: httpx.Client, server_base: str) -> None:
    before = events(client, _count="1")[0]["id"]
    assert httpx.get(server_base.removesuffix("/fhir") + "/healthz").status_code == 200
    newest = events(client, _count="2")
    assert newest[1]["id"] == before  # only the first audit search came in between


def test_non_fhir_endpoint_is_recorded(client: httpx.Client, server_base: str) -> None:
    root = server_base.removesuffix("/fhir")
    httpx.get(root + "/report/program.json", timeout=30)
    event = events(client, subtype="operation")[0]
    assert event["outcomeDesc"].endswith("GET /report/program.json")


def test_audit_search_with_an_out_of_range_date_is_400(client: httpx.Client) -> None:
    for value in ("9999", "0000", "9999-12-31"):
        r = client.get("/AuditEvent", params={"date": value})
        assert r.status_code == 400, (value, r.text)

"""Batch and transaction Bundles (R4 http.html#transaction)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from tests.api.helpers import FHIR_JSON, create, issue, patient, unique_id


def _bundle(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def _post(client: httpx.Client, bundle: dict[str, Any], **headers: str) -> httpx.Response:
    return client.post("/", json=bundle, headers={"Content-Type": FHIR_JSON, **headers})


def _referral_entries() -> list[dict[str, Any]]:
    pat, cond = "urn:uuid:11111111-1111-4111-8111-111111111111", "urn:uuid:2222-cond"
    return [
        {
            "fullUrl": "urn:uuid:3333-sr",
            "resource": {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "order",
                "subject": {"reference": pat},
                "reasonReference": [{"reference": cond}],
            },
            "request": {"method": "POST", "url": "ServiceRequest"},
        },
        {
            "fullUrl": cond,
            "resource": {
                "resourceType": "Condition",
                "subject": {"reference": pat},
                "code": {"text": "Chronic low back pain"},
            },
            "request": {"method": "POST", "url": "Condition"},
        },
        {"fullUrl": pat, "resource": patient(), "request": {"method": "POST", "url": "Patient"}},
    ]


def test_transaction_rewrites_urn_uuid_references_to_the_new_ids(client: httpx.Client) -> None:
    r = _post(client, _bundle("transaction", _referral_entries()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created"] * 3
    locations = [e["response"]["location"] for e in body["entry"]]
    sr_loc, cond_loc, pat_loc = (loc.split("/_history")[0] for loc in locations)
    sr = client.get(f"/{sr_loc}").json()
    assert sr["subject"]["reference"] == pat_loc
    assert sr["reasonReference"][0]["reference"] == cond_loc
    assert client.get(f"/{cond_loc}").json()["subject"]["reference"] == pat_loc


def test_transaction_is_all_or_nothing(client: httpx.Client) -> None:
    rid = unique_id()
    entries = [
        {"resource": patient(id=rid), "request": {"method": "PUT", "url": f"Patient/{rid}"}},
        {
            "resource": {"resourceType": "Patient", "gender": "bogus"},
            "request": {"method": "POST", "url": "Patient"},
        },
    ]
    r = _post(client, _bundle("transaction", entries))
    assert r.status_code == 422
    assert issue(r)["expression"] == ["Bundle.entry[1].resource.gender"]
    assert client.get(f"/Patient/{rid}").status_code == 404


def test_transaction_failing_late_in_the_database_rolls_back_earlier_writes(
    client: httpx.Client,
) -> None:
    rid = unique_id()
    stale = create(client, patient()).json()
    entries = [
        {"resource": patient(id=rid), "request": {"method": "PUT", "url": f"Patient/{rid}"}},
        {
            "resource": stale,
            "request": {"method": "PUT", "url": f"Patient/{stale['id']}", "ifMatch": 'W/"7"'},
        },
    ]
    r = _post(client, _bundle("transaction", entries))
    assert r.status_code == 412
    assert client.get(f"/Patient/{rid}").status_code == 404


def test_transaction_processes_delete_before_post_before_put_before_get(
    client: httpx.Client,
) -> None:
    doomed = create(client, patient()).json()["id"]
    rid = unique_id()
    entries = [
        {"request": {"method": "GET", "url": f"Patient/{rid}"}},
        {"resource": patient(id=rid), "request": {"method": "PUT", "url": f"Patient/{rid}"}},
        {"request": {"method": "DELETE", "url": f"Patient/{doomed}"}},
    ]
    r = _post(client, _bundle("transaction", entries))
    assert r.status_code == 200, r.text
    get, put, delete = r.json()["entry"]
    assert get["response"]["status"] == "200 OK"
    assert get["resource"]["id"] == rid
    assert put["response"]["status"] == "201 Created"
    assert delete["response"]["status"] == "200 OK"
    assert client.get(f"/Patient/{doomed}").status_code == 410


def test_transaction_touching_one_resource_twice_is_400(client: httpx.Client) -> None:
    rid = unique_id()
    entry = {"resource": patient(id=rid), "request": {"method": "PUT", "url": f"Patient/{rid}"}}
    r = _post(client, _bundle("transaction", [entry, entry]))
    assert r.status_code == 400


def test_transaction_patch_entry_applies_a_json_patch(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    ops = json.dumps([{"op": "replace", "path": "/gender", "value": "other"}]).encode()
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(ops).decode(),
    }
    entries = [{"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{rid}"}}]
    r = _post(client, _bundle("transaction", entries))
    assert r.status_code == 200, r.text
    assert client.get(f"/Patient/{rid}").json()["gender"] == "other"


def test_prefer_representation_returns_the_created_resources(client: httpx.Client) -> None:
    r = _post(client, _bundle("transaction", _referral_entries()), Prefer="return=representation")
    resources = [e["resource"] for e in r.json()["entry"]]
    assert [x["resourceType"] for x in resources] == ["ServiceRequest", "Condition", "Patient"]


def test_batch_reports_each_entry_on_its_own(client: httpx.Client) -> None:
    rid = unique_id()
    entries = [
        {"resource": patient(id=rid), "request": {"method": "PUT", "url": f"Patient/{rid}"}},
        {
            "resource": {"resourceType": "Patient", "gender": "bogus"},
            "request": {"method": "POST", "url": "Patient"},
        },
        {"request": {"method": "GET", "url": f"Patient/{unique_id()}"}},
        {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
    ]
    r = _post(client, _bundle("batch", entries))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created", "422", "404", "201 Created"]
    outcome = body["entry"][1]["response"]["outcome"]
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[1].resource.gender"]
    assert client.get(f"/Patient/{rid}").status_code == 200


def test_bundle_of_wrong_type_is_400(client: httpx.Client) -> None:
    r = _post(client, _bundle("collection", []))
    assert r.status_code == 400
    assert issue(r)["expression"] == ["Bundle.type"]


def test_entry_without_request_is_400(client: httpx.Client) -> None:
    r = _post(client, _bundle("transaction", [{"resource": patient()}]))
    assert r.status_code == 400


def test_non_bundle_posted_to_base_is_400(client: httpx.Client) -> None:
    r = client.post("/", json=patient(), headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 400


def test_transaction_as_xml(client: httpx.Client) -> None:
    xml = b"""<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/>
      <entry><fullUrl value="urn:uuid:aaaa"/><resource><Patient><gender value="male"/></Patient>
      </resource><request><method value="POST"/><url value="Patient"/></request></entry>
      <entry><resource><Observation><status value="final"/><code><text value="NRS"/></code>
      <subject><reference value="urn:uuid:aaaa"/></subject><valueInteger value="7"/></Observation>
      </resource><request><method value="POST"/><url value="Observation"/></request></entry>
    </Bundle>"""
    r = client.post(
        "/",
        content=xml,
        headers={"Content-Type": "application/fhir+xml", "Accept": "application/fhir+json"},
    )
    assert r.status_code == 200, r.text
    obs_loc = r.json()["entry"][1]["response"]["location"].split("/_history")[0]
    obs = client.get(f"/{obs_loc}").json()
    assert obs["subject"]["reference"].startswith("Patient/")
    assert obs["valueInteger"] == 7


def _kvnr_patient(kvnr: str) -> dict[str, Any]:
    return patient(identifier=[{"system": "http://fhir.de/sid/gkv/kvid-10", "value": kvnr}])


def _kvnr() -> str:
    return "A" + unique_id()[-9:]


def test_transaction_conditional_create_reuses_the_match(client: httpx.Client) -> None:
    kvnr = _kvnr()
    entry = {
        "fullUrl": "urn:uuid:pat",
        "resource": _kvnr_patient(kvnr),
        "request": {
            "method": "POST",
            "url": "Patient",
            "ifNoneExist": f"identifier=http://fhir.de/sid/gkv/kvid-10|{kvnr}",
        },
    }
    cond = {
        "resource": {
            "resourceType": "Condition",
            "subject": {"reference": "urn:uuid:pat"},
            "code": {"text": "Lumbago"},
        },
        "request": {"method": "POST", "url": "Condition"},
    }
    first = _post(client, _bundle("transaction", [entry, cond])).json()
    second = _post(client, _bundle("transaction", [entry, cond])).json()
    assert first["entry"][0]["response"]["status"] == "201 Created"
    assert second["entry"][0]["response"]["status"] == "200 OK"
    pat = first["entry"][0]["response"]["location"].split("/_history")[0]
    assert second["entry"][0]["response"]["location"].split("/_history")[0] == pat
    cond_loc = second["entry"][1]["response"]["location"].split("/_history")[0]
    assert client.get(f"/{cond_loc}").json()["subject"]["reference"] == pat
    found = client.get("/Patient", params={"identifier": f"http://fhir.de/sid/gkv/kvid-10|{kvnr}"})
    assert found.json()["total"] == 1


def test_transaction_resolves_conditional_references(client: httpx.Client) -> None:
    kvnr = _kvnr()
    pid = create(client, _kvnr_patient(kvnr)).json()["id"]
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "NRS"},
        "subject": {"reference": f"Patient?identifier=http://fhir.de/sid/gkv/kvid-10|{kvnr}"},
        "valueInteger": 6,
    }
    r = _post(
        client,
        _bundle(
            "transaction", [{"resource": obs, "request": {"method": "POST", "url": "Observation"}}]
        ),
    )
    assert r.status_code == 200, r.text
    loc = r.json()["entry"][0]["response"]["location"].split("/_history")[0]
    assert client.get(f"/{loc}").json()["subject"]["reference"] == f"Patient/{pid}"


def test_transaction_conditional_reference_without_match_fails_whole(
    client: httpx.Client,
) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "NRS"},
        "subject": {"reference": f"Patient?identifier=urn:none|{unique_id()}"},
    }
    r = _post(
        client,
        _bundle(
            "transaction", [{"resource": obs, "request": {"method": "POST", "url": "Observation"}}]
        ),
    )
    assert r.status_code == 412
    assert "matches no resource" in issue(r)["diagnostics"]


def test_transaction_conditional_update_and_delete(client: httpx.Client) -> None:
    kvnr = _kvnr()
    query = f"Patient?identifier=http://fhir.de/sid/gkv/kvid-10|{kvnr}"
    body = _kvnr_patient(kvnr)
    r = _post(
        client,
        _bundle("transaction", [{"resource": body, "request": {"method": "PUT", "url": query}}]),
    )
    assert r.json()["entry"][0]["response"]["status"] == "201 Created"
    body["gender"] = "male"
    r = _post(
        client,
        _bundle("transaction", [{"resource": body, "request": {"method": "PUT", "url": query}}]),
    )
    assert r.json()["entry"][0]["response"]["status"] == "200 OK"
    loc = r.json()["entry"][0]["response"]["location"]
    assert loc.endswith("/_history/2")
    r = _post(client, _bundle("transaction", [{"request": {"method": "DELETE", "url": query}}]))
    assert r.status_code == 200, r.text
    assert client.get(f"/{loc.split('/_history')[0]}").status_code == 410


def test_batch_search_entry_returns_a_searchset(client: httpx.Client) -> None:
    kvnr = _kvnr()
    create(client, _kvnr_patient(kvnr))
    r = _post(
        client,
        _bundle(
            "batch",
            [
                {
                    "request": {
                        "method": "GET",
                        "url": f"Patient?identifier=http://fhir.de/sid/gkv/kvid-10|{kvnr}",
                    }
                }
            ],
        ),
    )
    inner = r.json()["entry"][0]["resource"]
    assert inner["type"] == "searchset"
    assert inner["total"] == 1


def test_null_entry_is_400(client: httpx.Client) -> None:
    r = client.post(
        "/",
        content=b'{"resourceType":"Bundle","type":"transaction","entry":[null]}',
        headers={"Content-Type": FHIR_JSON},
    )
    assert r.status_code == 400


def test_entry_url_with_extra_path_segments_is_400(client: httpx.Client) -> None:
    entry = {"resource": patient(), "request": {"method": "PUT", "url": "Patient/../../x"}}
    assert _post(client, _bundle("transaction", [entry])).status_code == 400


def test_nested_contained_resources_are_rejected_quickly(client: httpx.Client) -> None:
    inner = b'{"resourceType":"Patient","contained":[' * 300 + b"{}" + b"]}" * 300
    body = b'{"resourceType":"Patient","contained":[' + inner + b"]}"
    r = client.post("/Patient", content=body, headers={"Content-Type": FHIR_JSON}, timeout=10)
    assert r.status_code == 400

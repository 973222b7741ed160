"""Create, read, vread, update, patch, delete and history over plain HTTP (R4 http.html)."""

from __future__ import annotations

import json

import httpx

from tests.api.helpers import FHIR_JSON, create, issue, patient, put, unique_id


def test_create_assigns_id_and_meta_and_answers_201_with_location(client: httpx.Client) -> None:
    r = create(client, patient())
    body = r.json()
    assert body["id"] and body["meta"]["versionId"] == "1"
    assert r.headers["location"].endswith(f"/Patient/{body['id']}/_history/1")
    assert r.headers["etag"] == 'W/"1"'
    assert "last-modified" in r.headers


def test_create_ignores_a_client_supplied_id(client: httpx.Client) -> None:
    body = create(client, patient(id="client-chosen")).json()
    assert body["id"] != "client-chosen"


def test_read_returns_exactly_what_was_sent_plus_id_and_meta(client: httpx.Client) -> None:
    sent = {
        "resourceType": "Patient",
        "extension": [{"url": "http://example.org/x", "valueDecimal": 1.50}],
        "name": [{"family": "Ærøskøbing", "given": ["Zoë", "李"]}],
        "birthDate": "1970-01-01",
        "_birthDate": {"extension": [{"url": "http://example.org/t", "valueString": "approx"}]},
        "contained": [{"resourceType": "Organization", "id": "o1", "name": "Klinik"}],
        "managingOrganization": {"reference": "#o1"},
    }
    raw = json.dumps(sent, ensure_ascii=False).replace("1.5,", "1.50,").replace("1.5}", "1.50}")
    r = client.post("/Patient", content=raw.encode(), headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201, r.text
    got = client.get(f"/Patient/{r.json()['id']}")
    assert b'"valueDecimal":1.50' in got.content
    stored = got.json()
    for key, value in sent.items():
        if key != "extension":
            assert stored[key] == value


def test_read_of_unknown_resource_is_404_operation_outcome(client: httpx.Client) -> None:
    r = client.get("/Patient/does-not-exist")
    assert r.status_code == 404
    assert issue(r)["code"] == "not-found"


def test_update_creates_a_new_version(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    body["gender"] = "other"
    r = put(client, body)
    assert r.status_code == 200
    assert r.json()["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'


def test_update_as_create_uses_the_client_id(client: httpx.Client) -> None:
    rid = unique_id()
    r = put(client, patient(id=rid))
    assert r.status_code == 201
    assert r.json()["id"] == rid
    assert client.get(f"/Patient/{rid}").status_code == 200


def test_update_with_id_mismatch_is_400(client: httpx.Client) -> None:
    rid = unique_id()
    r = client.put(f"/Patient/{rid}", json=patient(id="other"), headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 400
    assert issue(r)["expression"] == ["id"]


def test_update_without_id_in_body_is_400(client: httpx.Client) -> None:
    r = client.put(f"/Patient/{unique_id()}", json=patient(), headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 400


def test_vread_returns_each_version(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    body["gender"] = "male"
    put(client, body)
    v1 = client.get(f"/Patient/{body['id']}/_history/1").json()
    v2 = client.get(f"/Patient/{body['id']}/_history/2").json()
    assert (v1["gender"], v2["gender"]) == ("female", "male")


def test_vread_of_unknown_version_is_404(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    assert client.get(f"/Patient/{body['id']}/_history/9").status_code == 404


def test_delete_then_read_is_410_gone_and_history_is_kept(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    r = client.delete(f"/Patient/{rid}")
    assert r.status_code == 200
    assert r.headers["etag"] == 'W/"2"'
    gone = client.get(f"/Patient/{rid}")
    assert gone.status_code == 410
    assert issue(gone)["code"] == "deleted"
    assert client.get(f"/Patient/{rid}/_history/1").status_code == 200
    assert client.get(f"/Patient/{rid}/_history/2").status_code == 410
    history = client.get(f"/Patient/{rid}/_history").json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]


def test_delete_twice_changes_nothing(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    client.delete(f"/Patient/{rid}")
    assert client.delete(f"/Patient/{rid}").status_code == 204
    assert client.get(f"/Patient/{rid}/_history").json()["total"] == 2


def test_delete_of_unknown_resource_is_404(client: httpx.Client) -> None:
    assert client.delete(f"/Patient/{unique_id()}").status_code == 404


def test_update_after_delete_revives_the_resource(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    client.delete(f"/Patient/{body['id']}")
    r = put(client, body)
    assert r.status_code == 201
    assert r.json()["meta"]["versionId"] == "3"


def test_json_patch_changes_one_element(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    r = client.patch(
        f"/Patient/{rid}",
        content=json.dumps(ops),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["gender"] == "male"
    assert r.json()["meta"]["versionId"] == "2"


def test_json_patch_producing_an_invalid_resource_is_rejected(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "bogus"}]
    r = client.patch(
        f"/Patient/{rid}",
        content=json.dumps(ops),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 422
    assert issue(r)["expression"] == ["Patient.gender"]
    assert client.get(f"/Patient/{rid}").json()["gender"] == "female"


def test_json_patch_failing_test_op_is_422(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    ops = [{"op": "test", "path": "/gender", "value": "male"}]
    r = client.patch(
        f"/Patient/{rid}",
        content=json.dumps(ops),
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 422


def test_json_patch_with_wrong_content_type_is_415(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    r = client.patch(f"/Patient/{rid}", content="[]", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_instance_history_is_newest_first_with_total(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    for gender in ("male", "other"):
        body["gender"] = gender
        put(client, body)
    history = client.get(f"/Patient/{body['id']}/_history").json()
    assert history["type"] == "history"
    assert history["total"] == 3
    versions = [e["resource"]["meta"]["versionId"] for e in history["entry"]]
    assert versions == ["3", "2", "1"]


def test_history_count_pages_without_repeating_or_skipping(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    for i in range(6):
        body["birthDate"] = f"19{50 + i}-01-01"
        put(client, body)
    seen: list[str] = []
    url: str | None = f"/Patient/{body['id']}/_history?_count=3"
    while url:
        page = client.get(url).json()
        seen += [e["resource"]["meta"]["versionId"] for e in page["entry"]]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        url = nxt[0] if nxt else None
        if url is None:
            break
        # a write between pages must not shift the pages
        body["birthDate"] = "2000-01-01"
        put(client, body)
        body = client.get(f"/Patient/{body['id']}").json()
    assert seen == [str(v) for v in range(7, 0, -1)]


def test_type_history_since_lists_only_newer_versions(client: httpx.Client) -> None:
    first = create(client, patient()).json()
    since = first["meta"]["lastUpdated"]
    second = create(client, patient()).json()
    history = client.get("/Patient/_history", params={"_since": since, "_count": 1000}).json()
    ids = {e["resource"]["id"] for e in history["entry"] if "resource" in e}
    assert second["id"] in ids
    for e in history["entry"]:
        assert e["response"]["lastModified"] >= since


def test_system_history_includes_all_types(client: httpx.Client) -> None:
    org = create(client, {"resourceType": "Organization", "name": "Klinik"}).json()
    history = client.get("/_history", params={"_since": org["meta"]["lastUpdated"]}).json()
    assert any(e.get("resource", {}).get("id") == org["id"] for e in history["entry"])


def test_history_of_unknown_resource_is_404(client: httpx.Client) -> None:
    assert client.get(f"/Patient/{unique_id()}/_history").status_code == 404


def test_update_with_identical_content_creates_no_new_version(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    again = put(client, {k: v for k, v in body.items() if k != "meta"})
    assert again.status_code == 200
    assert again.json()["meta"]["versionId"] == "1"
    assert client.get(f"/Patient/{body['id']}/_history").json()["total"] == 1

"""ETags, conditional requests, Prefer, formats and subsetting (R4 http.html)."""

from __future__ import annotations

import httpx
import pytest
from lxml import etree

from tests.api.helpers import FHIR_JSON, create, issue, patient, put


def test_if_match_with_stale_version_is_412(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    put(client, {**body, "gender": "male"})
    r = put(client, {**body, "gender": "other"}, **{"If-Match": 'W/"1"'})
    assert r.status_code == 412
    assert issue(r)["code"] == "conflict"


def test_if_match_with_current_version_updates(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    assert put(client, body, **{"If-Match": 'W/"1"'}).status_code == 200


def test_malformed_if_match_is_400(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    assert put(client, body, **{"If-Match": "yesterday"}).status_code == 400


def test_if_none_match_with_current_etag_is_304(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    r = client.get(f"/Patient/{rid}", headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 304
    assert r.content == b""


def test_if_none_match_with_old_etag_returns_the_resource(client: httpx.Client) -> None:
    body = create(client, patient()).json()
    put(client, {**body, "gender": "male"})
    r = client.get(f"/Patient/{body['id']}", headers={"If-None-Match": 'W/"1"'})
    assert r.status_code == 200


def test_if_modified_since_after_last_update_is_304(client: httpx.Client) -> None:
    r = create(client, patient())
    rid = r.json()["id"]
    later = client.get(f"/Patient/{rid}", headers={"If-Modified-Since": r.headers["last-modified"]})
    assert later.status_code == 304
    earlier = client.get(
        f"/Patient/{rid}", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert earlier.status_code == 200


def test_prefer_return_minimal_has_no_body(client: httpx.Client) -> None:
    r = client.post(
        "/Patient", json=patient(), headers={"Content-Type": FHIR_JSON, "Prefer": "return=minimal"}
    )
    assert r.status_code == 201
    assert r.content == b""
    assert "location" in r.headers


def test_prefer_return_operation_outcome(client: httpx.Client) -> None:
    r = client.post(
        "/Patient",
        json=patient(),
        headers={"Content-Type": FHIR_JSON, "Prefer": "return=OperationOutcome"},
    )
    assert r.status_code == 201
    assert issue(r)["severity"] == "information"


@pytest.mark.parametrize("accept", ["application/fhir+xml", "application/xml"])
def test_read_as_xml_by_accept(client: httpx.Client, accept: str) -> None:
    rid = create(client, patient()).json()["id"]
    r = client.get(f"/Patient/{rid}", headers={"Accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(accept)
    root = etree.fromstring(r.content)
    assert root.tag == "{http://hl7.org/fhir}Patient"
    assert root.find("{http://hl7.org/fhir}gender").get("value") == "female"


def test_format_parameter_overrides_accept(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    r = client.get(
        f"/Patient/{rid}", params={"_format": "xml"}, headers={"Accept": "application/fhir+json"}
    )
    assert r.headers["content-type"].startswith("application/fhir+xml")


def test_application_json_is_accepted_and_answered(client: httpx.Client) -> None:
    r = client.post(
        "/Patient",
        json=patient(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert r.status_code == 201
    assert r.headers["content-type"].startswith("application/json")


def test_create_from_xml_and_read_back_as_json(client: httpx.Client) -> None:
    xml = (
        b'<Patient xmlns="http://hl7.org/fhir"><gender value="male"/>'
        b'<birthDate value="1980-02-03"/></Patient>'
    )
    r = client.post("/Patient", content=xml, headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 201, r.text
    got = client.get(f"/Patient/{r.json()['id']}").json()
    assert got["gender"] == "male" and got["birthDate"] == "1980-02-03"


def test_unacceptable_accept_is_406(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    r = client.get(f"/Patient/{rid}", headers={"Accept": "image/png"})
    assert r.status_code == 406
    assert issue(r)["code"] == "not-supported"


def test_unsupported_content_type_is_415(client: httpx.Client) -> None:
    r = client.post("/Patient", content=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


def test_pretty_output_is_indented(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    r = client.get(f"/Patient/{rid}", params={"_pretty": "true"})
    assert b'\n  "resourceType"' in r.content


def test_summary_true_drops_non_summary_elements_and_tags_subsetted(client: httpx.Client) -> None:
    body = patient(photo=[{"contentType": "image/png", "data": "aGVsbG8="}])
    rid = create(client, body).json()["id"]
    got = client.get(f"/Patient/{rid}", params={"_summary": "true"}).json()
    assert "photo" not in got
    assert got["gender"] == "female"
    assert any(t.get("code") == "SUBSETTED" for t in got["meta"]["tag"])


def test_elements_keeps_only_the_listed_elements(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    got = client.get(f"/Patient/{rid}", params={"_elements": "gender"}).json()
    assert got["gender"] == "female"
    assert "name" not in got and "birthDate" not in got


def test_body_over_the_limit_is_413_and_server_stays_up(client: httpx.Client) -> None:
    huge = b'{"resourceType":"Patient","name":[{"family":"' + b"x" * (11 * 1024 * 1024) + b'"}]}'
    r = client.post("/Patient", content=huge, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 413
    assert issue(r)["code"] == "too-long"
    assert client.get("/metadata").status_code == 200

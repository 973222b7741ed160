"""Over HTTP on both stores: $validate, 422 on profiled writes, the installed resources."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import FHIR_JSON, issue, unique_id
from tests.profiles.helpers import BASE, EXAMPLE_OF, broken, example


def _validate(
    client: httpx.Client, body: dict[str, Any], path: str, **params: str
) -> httpx.Response:
    return client.post(path, json=body, params=params, headers={"Content-Type": FHIR_JSON})


def _parameters(resource: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = [{"name": "resource", "resource": resource}]
    if profile:
        parameter.append({"name": "profile", "valueCanonical": profile})
    return {"resourceType": "Parameters", "parameter": parameter}


def test_every_example_is_valid_over_validate(client: httpx.Client) -> None:
    for profile in EXAMPLE_OF:
        resource = example(profile)
        r = _validate(client, resource, f"/{resource['resourceType']}/$validate")
        assert r.status_code == 200, r.text
        assert issue(r)["severity"] == "information"
        assert issue(r)["diagnostics"].startswith("valid")


def test_validate_reports_every_error_with_expressions(client: httpx.Client) -> None:
    doc = broken("ivz-verdict", lambda d: (d.pop("note"), d.__setitem__("status", "corrected")))
    r = _validate(client, doc, "/Observation/$validate")
    assert r.status_code == 200
    found = {(i["code"], tuple(i["expression"])) for i in r.json()["issue"]}
    assert ("required", ("Observation.note",)) in found
    assert ("invariant", ("Observation.status",)) in found
    assert all(i["severity"] == "error" for i in r.json()["issue"])


def test_validate_never_stores(client: httpx.Client) -> None:
    doc = example("ivz-pain-nrs")
    doc["id"] = unique_id()
    r = _validate(client, doc, f"/Observation/{doc['id']}/$validate")
    assert r.status_code == 200
    assert client.get(f"/Observation/{doc['id']}").status_code == 404


def test_validate_against_a_profile_named_in_parameters(client: httpx.Client) -> None:
    doc = example("ivz-pain-nrs")
    del doc["meta"]
    doc["valueInteger"] = 12
    plain = _validate(client, _parameters(doc), "/Observation/$validate")
    assert issue(plain)["severity"] == "information"
    profiled = _validate(
        client,
        _parameters(doc, f"{BASE}/StructureDefinition/ivz-pain-nrs"),
        "/Observation/$validate",
    )
    assert (issue(profiled)["code"], issue(profiled)["expression"]) == (
        "invariant",
        ["Observation.value"],
    )


def test_validate_against_a_profile_in_the_query(client: httpx.Client) -> None:
    doc = example("ivz-odi")
    del doc["meta"]
    del doc["subject"]
    r = _validate(
        client, doc, "/Observation/$validate", profile=f"{BASE}/StructureDefinition/ivz-odi|1.0.0"
    )
    assert r.status_code == 200
    assert issue(r)["expression"] == ["Observation.subject"]


def test_validate_with_an_unknown_profile_is_400(client: httpx.Client) -> None:
    r = _validate(
        client,
        example("ivz-odi"),
        "/Observation/$validate",
        profile=f"{BASE}/StructureDefinition/nope",
    )
    assert r.status_code == 400
    assert "Unknown profile" in issue(r)["diagnostics"]


def test_validate_of_a_body_that_is_not_a_resource_is_400(client: httpx.Client) -> None:
    r = client.post("/Observation/$validate", json=[1, 2], headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 400
    r = _validate(client, {"resourceType": "Parameters", "parameter": []}, "/Observation/$validate")
    assert r.status_code == 400


def test_validate_reports_r4_errors_too(client: httpx.Client) -> None:
    doc = example("ivz-odi")
    doc["favouriteColour"] = "blau"
    r = _validate(client, doc, "/Observation/$validate")
    assert r.status_code == 200
    assert issue(r)["expression"] == ["Observation.favouriteColour"]


def test_broken_profiled_write_is_422_and_stores_nothing(client: httpx.Client) -> None:
    doc = broken("ivz-chronification-stage", lambda d: d.__setitem__("status", "preliminary"))
    doc["id"] = unique_id()
    r = client.put(f"/Observation/{doc['id']}", json=doc, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 422
    assert (issue(r)["code"], issue(r)["expression"]) == ("invariant", ["Observation.status"])
    assert client.get(f"/Observation/{doc['id']}").status_code == 404


def test_broken_profiled_create_is_422(client: httpx.Client) -> None:
    doc = broken("ivz-proposed-surgery", lambda d: d.__setitem__("intent", "order"))
    r = client.post("/ServiceRequest", json=doc, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 422
    assert issue(r)["expression"] == ["ServiceRequest.intent"]


def test_valid_profiled_write_is_stored(client: httpx.Client) -> None:
    doc = example("ivz-physical-exam")
    doc["id"] = unique_id()
    r = client.put(f"/Observation/{doc['id']}", json=doc, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 201, r.text


def test_conformance_resources_are_installed(client: httpx.Client) -> None:
    url = f"{BASE}/StructureDefinition/ivz-referral"
    bundle = client.get("/StructureDefinition", params={"url": url}).json()
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["ivz-referral"]
    measure = client.get("/Measure/ivz-program-report")
    assert measure.status_code == 200
    codes = [g["code"]["text"] for g in measure.json()["group"]]
    assert codes == ["referrals", "participants", "confirmed", "not-confirmed", "booked-within-48h"]
    assert client.get("/ValueSet/ivz-spine-surgery-ops").status_code == 200
    assert client.get("/OperationDefinition/ivz-verdict").status_code == 200


def test_installed_resources_stay_at_their_first_version(client: httpx.Client) -> None:
    r = client.get("/StructureDefinition/ivz-verdict")
    assert r.json()["meta"]["versionId"] == "1"


def test_index_page_lists_every_profile(client: httpx.Client, server_base: str) -> None:
    root = server_base.removesuffix("/fhir")
    page = httpx.get(f"{root}/profiles/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for profile in EXAMPLE_OF:
        assert f"StructureDefinition-{profile}.json" in page.text
    sd = httpx.get(f"{root}/profiles/StructureDefinition-ivz-odi.json")
    assert sd.json()["url"] == f"{BASE}/StructureDefinition/ivz-odi"
    assert httpx.get(f"{root}/profiles/index.html").text == page.text
    assert httpx.get(f"{root}/profiles/..%2Fpyproject.toml").status_code == 404


def test_a_profile_parameter_without_a_uri_is_refused(client: httpx.Client) -> None:
    resource = example(next(iter(EXAMPLE_OF)))
    body = _parameters(resource)
    body["parameter"].append({"name": "profile", "valueString": "ivz-verdict"})
    r = _validate(client, body, f"/{resource['resourceType']}/$validate")
    assert r.status_code == 400, r.text
    assert "profile" in r.text

"""A SearchParameter resource adds a custom parameter; $reindex backfills older resources."""

from __future__ import annotations

import httpx

from tests.api.helpers import FHIR_JSON, create, issue, patient, unique_id


def _search_parameter(code: str, url: str) -> dict[str, object]:
    return {
        "resourceType": "SearchParameter",
        "url": f"https://ivz-bridge.example/fhir/SearchParameter/{code}",
        "name": code,
        "status": "active",
        "description": "Insurance case number carried in a program extension",
        "code": code,
        "base": ["Patient"],
        "type": "token",
        "expression": f"Patient.extension('{url}').value",
    }


def _with_case(url: str, value: str) -> dict[str, object]:
    return patient(extension=[{"url": url, "valueString": value}])


def test_custom_parameter_indexes_new_and_reindexed_resources(client: httpx.Client) -> None:
    code = f"case{unique_id()[-8:]}"
    url = f"https://ivz-bridge.example/fhir/StructureDefinition/{code}"
    older = create(client, _with_case(url, "K-1")).json()["id"]
    create(client, _search_parameter(code, url))
    newer = create(client, _with_case(url, "K-1")).json()["id"]

    found = client.get("/Patient", params={code: "K-1"}).json()
    assert {
        e["resource"]["id"]
        for e in found["entry"]
        if "resource" in e and e["search"]["mode"] == "match"
    } == {newer}

    r = client.post("/Patient/$reindex")
    assert r.status_code == 200, r.text
    assert r.json()["parameter"][0]["valueInteger"] >= 2

    found = client.get("/Patient", params={code: "K-1"}).json()
    ids = {e["resource"]["id"] for e in found["entry"] if e["search"]["mode"] == "match"}
    assert ids == {older, newer}


def test_search_parameter_that_does_not_compile_is_rejected(client: httpx.Client) -> None:
    bad = _search_parameter(f"bad{unique_id()[-6:]}", "http://x")
    bad["expression"] = "Patient.noSuchElement.value"
    r = client.post("/SearchParameter", json=bad, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 422
    assert "SearchParameter" in issue(r)["diagnostics"]


def test_capability_statement_lists_search_parameters(client: httpx.Client) -> None:
    statement = client.get("/metadata").json()
    observation = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Observation")
    names = {p["name"] for p in observation["searchParam"]}
    assert {"code", "subject", "date", "value-quantity", "code-value-quantity"} <= names
    assert {"code": "search-type"} in observation["interaction"]

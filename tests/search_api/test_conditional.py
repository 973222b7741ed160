"""Conditional create, update, delete and patch: the 0 / 1 / many rules.

http://hl7.org/fhir/R4/http.html#ccreate, #cond-update, #cdelete and #patch. Every test makes
its own identifier system, so the criteria match only what that test wrote.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.search_api.data import FHIR_JSON

JSON = {"Content-Type": FHIR_JSON}
PATCH = {"Content-Type": "application/json-patch+json"}


def system() -> str:
    return f"urn:ivz:test:conditional:{uuid.uuid4().hex[:12]}"


def patient(sys: str, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": sys, "value": value}],
        "name": [{"family": "Krüger", "given": ["Petra"]}],
        **extra,
    }


def create(client: httpx.Client, resource: dict[str, Any]) -> str:
    r = client.post("/Patient", json=resource, headers=JSON)
    assert r.status_code == 201, r.text[:500]
    return str(r.json()["id"])


def matching(client: httpx.Client, sys: str, value: str) -> list[str]:
    r = client.get("/Patient", params={"identifier": f"{sys}|{value}"})
    assert r.status_code == 200
    return sorted(e["resource"]["id"] for e in r.json().get("entry", []))


def location_id(r: httpx.Response) -> str:
    return r.headers["Location"].split("/Patient/")[1].split("/")[0]


def test_conditional_create(client: httpx.Client) -> None:
    sys = system()
    criteria = {"If-None-Exist": f"identifier={sys}|c1"}
    # no match: an ordinary create
    first = client.post("/Patient", json=patient(sys, "c1"), headers={**JSON, **criteria})
    assert first.status_code == 201, first.text[:500]
    created = location_id(first)
    # one match: nothing is created, 200 OK
    again = client.post("/Patient", json=patient(sys, "c1"), headers={**JSON, **criteria})
    assert again.status_code == 200, again.text[:500]
    assert matching(client, sys, "c1") == [created]
    # several matches: 412 Precondition Failed, nothing created
    other = create(client, patient(sys, "c1"))
    many = client.post("/Patient", json=patient(sys, "c1"), headers={**JSON, **criteria})
    assert many.status_code == 412, many.text[:500]
    assert matching(client, sys, "c1") == sorted([created, other])


def test_conditional_update(client: httpx.Client) -> None:
    sys = system()
    url = f"/Patient?identifier={sys}|u1"
    # no match and no id in the body: the server creates the resource
    first = client.put(url, json=patient(sys, "u1"), headers=JSON)
    assert first.status_code == 201, first.text[:500]
    created = location_id(first)
    # one match: that resource is updated
    second = client.put(url, json=patient(sys, "u1", gender="female"), headers=JSON)
    assert second.status_code == 200, second.text[:500]
    assert location_id(second) == created
    read = client.get(f"/Patient/{created}").json()
    assert read["gender"] == "female" and read["meta"]["versionId"] == "2"
    # one match, but the body names another id: 400
    wrong = client.put(url, json=patient(sys, "u1", id="sa-other-id"), headers=JSON)
    assert wrong.status_code == 400, wrong.text[:500]
    # several matches: 412
    create(client, patient(sys, "u1"))
    many = client.put(url, json=patient(sys, "u1", gender="male"), headers=JSON)
    assert many.status_code == 412, many.text[:500]
    assert client.get(f"/Patient/{created}").json()["gender"] == "female"


def test_conditional_delete(client: httpx.Client) -> None:
    sys = system()
    # no match: nothing to delete (an ordinary delete of nothing)
    none = client.delete(f"/Patient?identifier={sys}|d0")
    assert none.status_code in (200, 204, 404), none.text[:500]
    # one match: deleted
    only = create(client, patient(sys, "d1"))
    one = client.delete(f"/Patient?identifier={sys}|d1")
    assert one.status_code in (200, 204), one.text[:500]
    assert client.get(f"/Patient/{only}").status_code == 410
    assert matching(client, sys, "d1") == []
    # several matches: this server refuses with 412 and deletes nothing
    a, b = create(client, patient(sys, "d2")), create(client, patient(sys, "d2"))
    many = client.delete(f"/Patient?identifier={sys}|d2")
    assert many.status_code == 412, many.text[:500]
    assert matching(client, sys, "d2") == sorted([a, b])


def test_conditional_patch(client: httpx.Client) -> None:
    sys = system()
    ops = [{"op": "add", "path": "/gender", "value": "female"}]
    # no match: 404
    none = client.patch(f"/Patient?identifier={sys}|p0", json=ops, headers=PATCH)
    assert none.status_code == 404, none.text[:500]
    # one match: patched
    only = create(client, patient(sys, "p1"))
    one = client.patch(f"/Patient?identifier={sys}|p1", json=ops, headers=PATCH)
    assert one.status_code == 200, one.text[:500]
    assert client.get(f"/Patient/{only}").json()["gender"] == "female"
    # several matches: 412, nothing patched
    a, b = create(client, patient(sys, "p2")), create(client, patient(sys, "p2"))
    many = client.patch(f"/Patient?identifier={sys}|p2", json=ops, headers=PATCH)
    assert many.status_code == 412, many.text[:500]
    assert all("gender" not in client.get(f"/Patient/{i}").json() for i in (a, b))


def test_conditional_criteria_use_full_search(client: httpx.Client) -> None:
    """Criteria are ordinary searches: modifiers, chains and AND work in them too."""
    sys = system()
    kept = create(client, patient(sys, "x1", birthDate="1970-05-05"))
    create(client, patient(sys, "x2", birthDate="1990-05-05"))
    url = f"/Patient?identifier={sys}|&birthdate=lt1980"
    r = client.put(
        url, json=patient(sys, "x1", birthDate="1970-05-05", gender="male"), headers=JSON
    )
    assert r.status_code == 200, r.text[:500]
    assert location_id(r) == kept
    # an unknown parameter in the criteria must not silently widen the match
    bad = client.delete(f"/Patient?identifier={sys}|&bogus-param=1")
    assert bad.status_code in (400, 412), bad.text[:500]
    assert len(matching(client, sys, "x1") + matching(client, sys, "x2")) == 2


def test_conditional_create_in_a_transaction(client: httpx.Client) -> None:
    """Bundle.entry.request.ifNoneExist follows the same 0/1/many rules (http.html#trules)."""
    sys = system()
    existing = create(client, patient(sys, "t1"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:" + str(uuid.uuid4()),
                "resource": patient(sys, "t1"),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={sys}|t1",
                },
            }
        ],
    }
    r = client.post("", json=bundle, headers=JSON)
    assert r.status_code == 200, r.text[:500]
    assert r.json()["entry"][0]["response"]["status"].startswith("200")
    assert matching(client, sys, "t1") == [existing]

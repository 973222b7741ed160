"""Small builders shared by the API tests."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"


def patient(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": "Müller", "given": ["Erika"]}],
        "gender": "female",
        "birthDate": "1968-04-12",
    }
    body.update(extra)
    return body


def unique_id() -> str:
    return f"t-{uuid.uuid4().hex[:20]}"


def create(client: httpx.Client, resource: dict[str, Any]) -> httpx.Response:
    r = client.post(
        f"/{resource['resourceType']}", json=resource, headers={"Content-Type": FHIR_JSON}
    )
    assert r.status_code == 201, r.text
    return r


def put(client: httpx.Client, resource: dict[str, Any], **headers: str) -> httpx.Response:
    return client.put(
        f"/{resource['resourceType']}/{resource['id']}",
        json=resource,
        headers={"Content-Type": FHIR_JSON, **headers},
    )


def issue(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    first: dict[str, Any] = body["issue"][0]
    return first

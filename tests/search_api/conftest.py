"""Fixtures of the search suite: one run tag per session, the data set loaded once per server."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.search_api.data import FHIR_JSON, build


@dataclass(frozen=True)
class Loaded:
    """The data set as written to one server."""

    base: str
    run: str
    tag: str
    #: ``Type/id`` of every resource written, by data set name.
    refs: dict[str, str]


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def dataset(server: Any, run_id: str) -> Loaded:
    """Write the data set with one transaction (PUT entries, urn:uuid fullUrls)."""
    ds = build(run_id)
    bundle = ds.bundle()
    with httpx.Client(base_url=server.base, timeout=60) as c:
        r = c.post("", json=bundle, headers={"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    assert r.status_code == 200, r.text[:3000]
    answer = r.json()
    assert answer["type"] == "transaction-response"
    statuses = {e["response"]["status"][:3] for e in answer["entry"]}
    assert statuses <= {"200", "201"}, statuses
    refs = {
        name: f"{res['resourceType']}/{e['resource']['id']}"
        for (name, res), e in zip(ds.resources, bundle["entry"], strict=True)
    }
    return Loaded(server.base, run_id, ds.tag, refs)

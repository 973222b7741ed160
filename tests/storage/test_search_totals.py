"""Bundle.total: exact when cheap or asked for, absent rather than slow otherwise."""

from __future__ import annotations

import uuid

import pytest

from fhir_server.service.resources import ResourceService
from fhir_server.storage.database import Database


@pytest.fixture()
def tagged(db: Database) -> tuple[ResourceService, str]:
    """Five Observations carrying a tag of this test's own."""
    service = ResourceService(db)
    code = uuid.uuid4().hex
    for i in range(5):
        service.create(
            "Observation",
            {
                "resourceType": "Observation",
                "meta": {"tag": [{"system": "urn:test", "code": code}]},
                "status": "final",
                "code": {"text": "x"},
                "effectiveDateTime": f"2026-01-0{i + 1}",
            },
        )
    return service, f"urn:test|{code}"


def _search(service: ResourceService, tag: str, *extra: tuple[str, str]) -> int | None:
    result = service.search.search(["Observation"], [("_tag", tag), ("_count", "2"), *extra])
    return result.total


def test_total_is_exact_below_the_count_cap(tagged: tuple[ResourceService, str]) -> None:
    service, tag = tagged
    assert _search(service, tag) == 5


def test_total_is_absent_above_the_count_cap(tagged: tuple[ResourceService, str]) -> None:
    service, tag = tagged
    service.search.default_count_cap = 3
    assert _search(service, tag) is None


def test_total_accurate_counts_beyond_the_cap(tagged: tuple[ResourceService, str]) -> None:
    service, tag = tagged
    service.search.default_count_cap = 3
    assert _search(service, tag, ("_total", "accurate")) == 5


def test_total_estimate_gives_a_number(tagged: tuple[ResourceService, str]) -> None:
    service, tag = tagged
    estimate = _search(service, tag, ("_total", "estimate"))
    assert isinstance(estimate, int) and estimate >= 0


def test_total_none_leaves_it_out(tagged: tuple[ResourceService, str]) -> None:
    service, tag = tagged
    assert _search(service, tag, ("_total", "none")) is None


def test_sorted_pages_by_index_walk_neither_skip_nor_repeat(
    tagged: tuple[ResourceService, str],
) -> None:
    service, tag = tagged
    seen: list[str] = []
    token = None
    while True:
        extra = [("_sort", "-date")] + ([("_page", token)] if token else [])
        result = service.search.search(["Observation"], [("_tag", tag), ("_count", "2"), *extra])
        seen += [m.id for m in result.matches]
        token = result.next_cursor
        if token is None:
            break
    dates = [service.read("Observation", i).content for i in seen]
    assert len(seen) == len(set(seen)) == 5
    assert dates == sorted(dates, key=lambda c: c.split(b'effectiveDateTime":"')[1], reverse=True)

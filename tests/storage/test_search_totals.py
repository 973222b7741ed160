"""Bundle.total: exact when cheap or asked for, absent rather than slow otherwise."""

from __future__ import annotations

import uuid

import pytest

from fhir_server.service.resources import ResourceService
from fhir_server.storage import search_repo
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


@pytest.mark.parametrize("budget", [0, 5000], ids=["per-match-keys", "index-walk"])
@pytest.mark.parametrize("order", ["-date", "date"])
def test_sorted_pages_neither_skip_nor_repeat(
    tagged: tuple[ResourceService, str],
    monkeypatch: pytest.MonkeyPatch,
    budget: int,
    order: str,
) -> None:
    service, tag = tagged
    monkeypatch.setattr(search_repo, "WALK_BUDGET", budget)
    seen: list[str] = []
    token = None
    while True:
        extra = [("_sort", order)] + ([("_page", token)] if token else [])
        result = service.search.search(["Observation"], [("_tag", tag), ("_count", "2"), *extra])
        seen += [m.id for m in result.matches]
        token = result.next_cursor
        if token is None:
            break
    dates = [service.read("Observation", i).content for i in seen]
    assert len(seen) == len(set(seen)) == 5
    by_date = sorted(
        dates, key=lambda c: c.split(b'effectiveDateTime":"')[1], reverse=order.startswith("-")
    )
    assert dates == by_date


def test_index_walk_lists_resources_without_a_value_last(
    tagged: tuple[ResourceService, str],
) -> None:
    service, tag = tagged
    code = tag.split("|")[1]
    undated = [
        service.create(
            "Observation",
            {
                "resourceType": "Observation",
                "meta": {"tag": [{"system": "urn:test", "code": code}]},
                "status": "final",
                "code": {"text": "no date"},
            },
        ).stored.id
        for _ in range(2)
    ]
    seen: list[str] = []
    token = None
    while True:
        extra = [("_sort", "-date")] + ([("_page", token)] if token else [])
        result = service.search.search(["Observation"], [("_tag", tag), ("_count", "3"), *extra])
        seen += [m.id for m in result.matches]
        token = result.next_cursor
        if token is None:
            break
    assert len(seen) == len(set(seen)) == 7
    assert sorted(seen[-2:]) == sorted(undated)

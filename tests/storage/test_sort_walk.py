"""A one-key sort's first page: a bounded walk of the key's index decides how to sort.

The walk reads at most ``WALK_BUDGET`` index rows in order (PostgreSQL). Common matches fill
the page within them; rare ones use the budget up and fall back to computing each match's
key; when the index has fewer rows than the budget the walk is complete. Each way, the pages,
their ``next`` and ``previous`` links and the resources without a value (last) are those of
the general order. A small budget stands in for the 5,000 rows of a million resources.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from fhir_server.service.resources import ResourceService
from fhir_server.service.search import SearchResult
from fhir_server.storage import migrate, search_repo
from fhir_server.storage.database import Database
from fhir_server.storage.repository import StoredVersion
from tests.conftest import fresh_url

DAY0 = date(2026, 1, 1)
#: Observation codes: "common" every other index row from the newest on, "rare" only among
#: the oldest rows, "filler" in between; each code also has resources without a date.
COMMON, RARE, FILLER = "common", "rare", "filler"
DATED = 46  # Observations with a date: index rows of the walk
#: (code, codings with that code): sorted by code, a resource meets the walk several times.
DUPLICATED = [
    ("b", 2),
    ("a", 3),
    ("c", 1),
    ("e", 3),
    ("b", 2),
    ("a", 2),
    ("d", 3),
    ("c", 2),
    ("e", 3),
]
DUP_CATEGORY = {"system": "urn:walk", "code": "dup"}


def _obs(code: str, day: int | None) -> dict[str, object]:
    resource: dict[str, object] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "urn:walk", "code": code}]},
    }
    if day is not None:
        resource["effectiveDateTime"] = (DAY0 + timedelta(days=day)).isoformat()
    return resource


@pytest.fixture(scope="module")
def service(store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ResourceService]:
    """A database of its own: the walk reads every Observation date, not just this test's."""
    for url in fresh_url(store, tmp_path_factory.mktemp("walk"), "ivz_walk"):
        db = Database(url)
        migrate.upgrade(db)
        svc = ResourceService(db)
        # Newest first: 10 common interleaved with 10 filler, 20 filler, then 3 rare and 2
        # common among the oldest; a common resource created last ties with one at day 98.
        plan: list[tuple[str, int | None]] = []
        for i in range(10):
            plan += [(COMMON, 100 - 2 * i), (FILLER, 99 - 2 * i)]
        plan += [(FILLER, 60 - i) for i in range(20)]
        plan += [(RARE, 30), (COMMON, 29), (RARE, 28), (COMMON, 28), (RARE, 27)]
        plan += [(COMMON, None), (COMMON, None), (RARE, None), (FILLER, None), (COMMON, 98)]
        for code, day in plan:
            svc.create("Observation", _obs(code, day))
        # Codes repeated within a resource: one token index row each, all with its value.
        for code, times in DUPLICATED:
            coding = [{"system": f"urn:dup{i}", "code": code} for i in range(times)]
            dup = {"resourceType": "Observation", "status": "final", "code": {"coding": coding}}
            svc.create("Observation", {**dup, "category": [{"coding": [DUP_CATEGORY]}]})
        yield svc
        db.dispose()


def _search(
    service: ResourceService, code: str, sort: str, *extra: tuple[str, str]
) -> SearchResult:
    pairs = [("code", f"urn:walk|{code}"), ("_sort", sort), ("_count", "3"), *extra]
    return service.search.search(["Observation"], pairs)


def _expected(service: ResourceService, code: str, sort: str) -> list[str]:
    """The general order, computed here: by date (missing last), then by creation."""
    result = service.search.search(
        ["Observation"], [("code", f"urn:walk|{code}"), ("_count", "100")]
    )
    found = sorted(result.matches, key=lambda m: m.res_pk)
    contents = {m.id: m.content or b"" for m in found}
    dated = [m for m in found if b"effectiveDateTime" in contents[m.id]]
    undated = [m for m in found if b"effectiveDateTime" not in contents[m.id]]

    def day(m: StoredVersion) -> str:
        return contents[m.id].split(b'effectiveDateTime":"')[1][:10].decode()

    dated.sort(key=day, reverse=sort.startswith("-"))  # stable: equal days by res_pk
    return [m.id for m in dated + undated]


def _ids(result: SearchResult) -> list[str]:
    return [m.id for m in result.matches]


def _walked(result: SearchResult) -> bool:
    """The cursor's flag: the page came from the index walk."""
    assert result.next_cursor is not None
    return search_repo.decode_cursor(result.next_cursor)[2]


def _check(service: ResourceService, code: str, sort: str) -> SearchResult:
    """Next links from the first page to the last give the general order, previous links
    lead back through the same pages; the first page is returned."""
    first = _search(service, code, sort)
    pages = [first]
    while pages[-1].next_cursor is not None:
        assert len(pages) < 20, "the next links never end"
        pages.append(_search(service, code, sort, ("_page", pages[-1].next_cursor)))
    assert [i for p in pages for i in _ids(p)] == _expected(service, code, sort)
    assert len(pages) > 1 and all(len(p.matches) == 3 for p in pages[:-1])
    back = [pages[-1]]
    while back[-1].prev_cursor is not None:
        assert len(back) < 20, "the previous links never end"
        back.append(_search(service, code, sort, ("_page", back[-1].prev_cursor)))
    assert [_ids(p) for p in reversed(back)] == [_ids(p) for p in pages]
    return first


@pytest.mark.parametrize("sort", ["-date", "date"])
def test_common_matches_fill_the_page_within_the_budget(
    service: ResourceService, monkeypatch: pytest.MonkeyPatch, store: str, sort: str
) -> None:
    monkeypatch.setattr(search_repo, "WALK_BUDGET", 10 if sort == "-date" else 12)
    first = _check(service, COMMON, sort)
    if store == "postgres":
        # Descending, 4 common rows are among the 10 newest; ascending, 4 of the 12 oldest
        # (3 rare, 2 common, then filler) are not: descending walks, ascending falls back.
        assert _walked(first) is (sort == "-date")
        assert first.total == (None if sort == "-date" else 15)


@pytest.mark.parametrize("sort", ["-date", "date"])
def test_rare_matches_use_the_budget_up_and_fall_back(
    service: ResourceService, monkeypatch: pytest.MonkeyPatch, store: str, sort: str
) -> None:
    monkeypatch.setattr(search_repo, "WALK_BUDGET", 10)
    first = _check(service, RARE, sort)
    if store == "postgres":
        assert not _walked(first)
    assert first.total == 4  # counted as before: few matches


@pytest.mark.parametrize("code", [COMMON, RARE, FILLER])
@pytest.mark.parametrize("sort", ["-date", "date"])
def test_an_index_smaller_than_the_budget_is_walked_whole(
    service: ResourceService, monkeypatch: pytest.MonkeyPatch, store: str, code: str, sort: str
) -> None:
    monkeypatch.setattr(search_repo, "WALK_BUDGET", 1000)
    first = _check(service, code, sort)
    if store == "postgres":
        assert _walked(first)


@pytest.mark.parametrize(("budget", "walks"), [(DATED - 1, False), (DATED, True)])
def test_a_budget_of_every_index_row_is_a_complete_walk(
    service: ResourceService, monkeypatch: pytest.MonkeyPatch, store: str, budget: int, walks: bool
) -> None:
    """Rare matches: one index row beyond the budget makes it used up, none makes it whole."""
    monkeypatch.setattr(search_repo, "WALK_BUDGET", budget)
    first = _check(service, RARE, "-date")
    if store == "postgres":
        assert _walked(first) is walks


@pytest.mark.parametrize("budget", [4, 1000])
@pytest.mark.parametrize("sort", ["-code", "code"])
def test_a_resource_met_several_times_in_the_walk_is_listed_once(
    service: ResourceService, monkeypatch: pytest.MonkeyPatch, sort: str, budget: int
) -> None:
    monkeypatch.setattr(search_repo, "WALK_BUDGET", budget)
    pairs = [("category", "urn:walk|dup"), ("_sort", sort), ("_count", "2")]
    pages = [service.search.search(["Observation"], pairs)]
    while (token := pages[-1].next_cursor) is not None:
        assert len(pages) < 20, "the next links never end"
        pages.append(service.search.search(["Observation"], [*pairs, ("_page", token)]))
    got = [m for p in pages for m in p.matches]
    created = sorted(got, key=lambda m: m.res_pk)
    codes = [c for c, _ in DUPLICATED]
    by_code = sorted(zip(codes, created, strict=True), key=lambda p: p[0], reverse=sort[0] == "-")
    assert [m.id for m in got] == [m.id for _, m in by_code]
    back = [pages[-1]]
    while (token := back[-1].prev_cursor) is not None:
        back.append(service.search.search(["Observation"], [*pairs, ("_page", token)]))
    assert [_ids(p) for p in reversed(back)] == [_ids(p) for p in pages]


@pytest.mark.parametrize(
    ("code", "walks", "statements"), [(COMMON, True, 2), (FILLER, True, 2), (RARE, False, 1)]
)
def test_a_short_probe_decides_before_the_whole_budget(
    service: ResourceService,
    monkeypatch: pytest.MonkeyPatch,
    store: str,
    code: str,
    walks: bool,
    statements: int,
) -> None:
    """Newest first, the 4 probed index rows hold 2 common and 2 filler matches: at that rate
    the budget of 16 holds 8, a page and more, so the walk reads on. No rare one: give up."""
    monkeypatch.setattr(search_repo, "WALK_BUDGET", 16)
    monkeypatch.setattr(search_repo, "WALK_PROBE", 4)
    calls: list[int | None] = []
    walk_index = search_repo._walk_index

    def spy(*args: Any) -> Any:
        calls.append(args[-1])
        return walk_index(*args)

    monkeypatch.setattr(search_repo, "_walk_index", spy)
    first = _search(service, code, "-date")
    if store == "postgres":
        assert _walked(first) is walks
        assert calls[0] == 4 and calls[1:] == [16] * (statements - 1)
    monkeypatch.undo()
    _check(service, code, "-date")

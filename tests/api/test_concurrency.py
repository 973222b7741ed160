"""Concurrent writers on one resource: no lost update, no forked history (both stores)."""

from __future__ import annotations

import httpx

from tests.api.conftest_helpers import parallel
from tests.api.helpers import FHIR_JSON, create, patient, unique_id

WRITERS = 8
UPDATES_EACH = 6


def _versions(client: httpx.Client, rid: str) -> list[int]:
    page = client.get(f"/Patient/{rid}/_history", params={"_count": 1000}).json()
    return sorted(int(e["response"]["etag"].split('"')[1]) for e in page["entry"])


def test_concurrent_updates_are_all_kept_as_consecutive_versions(server_base: str) -> None:
    with httpx.Client(base_url=server_base, timeout=60) as c:
        body = create(c, patient()).json()

    def writer(n: int) -> list[int]:
        codes = []
        with httpx.Client(base_url=server_base, timeout=60) as c:
            for i in range(UPDATES_EACH):
                mine = {**body, "birthDate": f"19{10 + n}-01-{10 + i}"}
                r = c.put(f"/Patient/{body['id']}", json=mine, headers={"Content-Type": FHIR_JSON})
                codes.append(r.status_code)
        return codes

    results = parallel(writer, WRITERS)
    assert all(code == 200 for codes in results for code in codes)
    with httpx.Client(base_url=server_base, timeout=60) as c:
        final = c.get(f"/Patient/{body['id']}").json()
        assert final["meta"]["versionId"] == str(1 + WRITERS * UPDATES_EACH)
        assert _versions(c, body["id"]) == list(range(1, 2 + WRITERS * UPDATES_EACH))


def test_concurrent_if_match_updates_let_exactly_one_win_per_version(server_base: str) -> None:
    with httpx.Client(base_url=server_base, timeout=60) as c:
        body = create(c, patient()).json()

    def writer(n: int) -> list[tuple[int, int]]:
        outcomes = []
        with httpx.Client(base_url=server_base, timeout=60) as c:
            for i in range(UPDATES_EACH):
                current = c.get(f"/Patient/{body['id']}")
                version = int(current.json()["meta"]["versionId"])
                mine = {**current.json(), "birthDate": f"19{10 + n}-0{1 + i % 9}-01"}
                r = c.put(
                    f"/Patient/{body['id']}",
                    json=mine,
                    headers={"Content-Type": FHIR_JSON, "If-Match": f'W/"{version}"'},
                )
                assert r.status_code in (200, 412), r.text
                outcomes.append((r.status_code, version))
        return outcomes

    results = [o for chunk in parallel(writer, WRITERS) for o in chunk]
    won = [version for code, version in results if code == 200]
    assert len(won) == len(set(won)), "two writers updated from the same version"
    with httpx.Client(base_url=server_base, timeout=60) as c:
        final = int(c.get(f"/Patient/{body['id']}").json()["meta"]["versionId"])
        assert final == 1 + len(won)
        assert _versions(c, body["id"]) == list(range(1, final + 1))


def test_concurrent_update_as_create_of_one_id_creates_it_once(server_base: str) -> None:
    rid = unique_id()

    def writer(n: int) -> list[int]:
        with httpx.Client(base_url=server_base, timeout=60) as c:
            body = patient(id=rid, birthDate=f"19{10 + n}")
            r = c.put(f"/Patient/{rid}", json=body, headers={"Content-Type": FHIR_JSON})
            return [r.status_code]

    codes = [c for chunk in parallel(writer, WRITERS) for c in chunk]
    assert sorted(codes) == [200] * (WRITERS - 1) + [201]
    with httpx.Client(base_url=server_base, timeout=60) as c:
        assert _versions(c, rid) == list(range(1, WRITERS + 1))


def test_parallel_helper_runs_every_worker() -> None:
    assert sorted(x for chunk in parallel(lambda n: [n], 4) for x in chunk) == [0, 1, 2, 3]

"""Search at scale: indexing cost while loading, and p50/p95 of a fixed query mix as data grows.

Run: ``.venv/bin/python -m bench.search`` (PostgreSQL by default; ``IVZ_BENCH_DATABASE=sqlite``).
Sizes come from ``IVZ_BENCH_SEARCH_SIZES`` (default ``10000,100000``; the issue's full run is
``10000,100000,1000000``). Data are Synthea-like groups loaded through the service layer in
100-entry transactions, so the indexing cost measured is the one a client pays. The query plans
(EXPLAIN ANALYZE, BUFFERS on PostgreSQL, with the planner settings the walk uses) of the mix and
of the sorted query's second page are written to ``bench/plans/``.

``IVZ_BENCH_KEEP_SCHEMA=name`` loads into that PostgreSQL schema and keeps it (created if
missing; groups it already holds are not loaded again), so that a million resources are loaded
once and later runs only measure: drop it with ``DROP SCHEMA name CASCADE`` when done.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

from fhir_server.search.registry import Registry
from fhir_server.service.resources import ResourceService
from fhir_server.service.search import SearchService
from fhir_server.service.transaction import process
from fhir_server.storage import migrate
from fhir_server.storage.database import Database

PG_URL = os.environ.get(
    "IVZ_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PLANS = Path(__file__).with_name("plans")
GROUP = 12  # resources per patient group
BUNDLE_GROUPS = 8  # 96 entries per transaction
RUNS = int(os.environ.get("IVZ_BENCH_SEARCH_RUNS", "40"))
LOINC = ["72514-3", "97909-6", "44261-6", "70274-6", "8480-6", "8462-4", "29463-7"]
ICD = ["M51.2", "M54.5", "M54.4", "M51.1", "M48.06", "M53.26", "F45.41"]
OPS = ["5-836.30", "5-831.0", "5-032.00", "5-839.5", "8-918.00"]
BASE = datetime(2024, 1, 1, tzinfo=UTC)


def _day(i: int) -> str:
    return (BASE + timedelta(days=i % 900, hours=i % 24)).isoformat()


def group(n: int) -> list[dict[str, Any]]:
    """One patient with conditions, referral, proposal, appointment, observations, care plan."""
    urn = [f"urn:uuid:{uuid.UUID(int=n * GROUP + k + 1)}" for k in range(GROUP)]
    pat = {"reference": urn[0]}
    rnd = random.Random(n)
    resources: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "identifier": [{"system": "http://fhir.de/sid/gkv/kvid-10", "value": f"K{n:09d}"}],
            "name": [
                {
                    "family": rnd.choice(["Müller", "Schmidt", "Weiß", "Bauer"]) + str(n % 997),
                    "given": [rnd.choice(["Erika", "Hans", "Jürgen", "Ayşe"])],
                }
            ],
            "gender": rnd.choice(["female", "male"]),
            "birthDate": f"{1940 + n % 60}-{1 + n % 12:02d}-{1 + n % 28:02d}",
        },
        *[
            {
                "resourceType": "Condition",
                "subject": pat,
                "code": {
                    "coding": [
                        {
                            "system": "http://fhir.de/CodeSystem/bfarm/icd-10-gm",
                            "version": "2026",
                            "code": ICD[(n + k) % len(ICD)],
                        }
                    ]
                },
                "recordedDate": _day(n + k),
            }
            for k in range(2)
        ],
        {
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "proposal",
            "subject": pat,
            "code": {
                "coding": [
                    {
                        "system": "http://fhir.de/CodeSystem/bfarm/ops",
                        "version": "2026",
                        "code": OPS[n % len(OPS)],
                    }
                ]
            },
            "authoredOn": _day(n),
        },
        {
            "resourceType": "ServiceRequest",
            "status": rnd.choice(["active", "completed", "on-hold"]),
            "intent": "order",
            "subject": pat,
            "identifier": [{"system": "https://ivz-bridge.example/sid/referral", "value": f"R{n}"}],
            "reasonReference": [{"reference": urn[1]}],
            "supportingInfo": [{"reference": urn[3]}],
            "authoredOn": _day(n),
        },
        {
            "resourceType": "Appointment",
            "status": "booked",
            "basedOn": [{"reference": urn[4]}],
            "start": _day(n + 2),
            "end": _day(n + 3),
            "participant": [{"actor": pat, "status": "accepted"}],
        },
        *[
            {
                "resourceType": "Observation",
                "status": "final",
                "subject": pat,
                "basedOn": [{"reference": urn[4]}],
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": LOINC[(n + k) % len(LOINC)]}]
                },
                "effectiveDateTime": _day(n + k),
                "valueQuantity": {
                    "value": (n + k) % 11,
                    "unit": "{score}",
                    "system": "http://unitsofmeasure.org",
                    "code": "{score}",
                },
            }
            for k in range(5)
        ],
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "subject": pat,
            "basedOn": [{"reference": urn[4]}],
            "period": {"start": _day(n + 5)},
        },
    ]
    return [
        {"fullUrl": u, "resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
        for u, r in zip(urn, resources, strict=True)
    ]


def bundle(first_group: int) -> dict[str, Any]:
    entries = [e for g in range(first_group, first_group + BUNDLE_GROUPS) for e in group(g)]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


#: A schema to keep between runs (created if missing, never dropped; groups already loaded into
#: it are not loaded again), so that a million resources are loaded once while one works.
KEEP_SCHEMA = os.environ.get("IVZ_BENCH_KEEP_SCHEMA", "")


@contextmanager
def database(kind: str) -> Iterator[Database]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{tmp}/search.db")
            migrate.upgrade(db)
            yield db
            db.dispose()
        return
    if KEEP_SCHEMA and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", KEEP_SCHEMA):
        raise SystemExit("IVZ_BENCH_KEEP_SCHEMA must be a plain lower-case identifier")
    schema = KEEP_SCHEMA or f"ivz_bench_search_{secrets.token_hex(4)}"
    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    try:
        db = Database(f"{PG_URL}?options=-csearch_path%3D{schema}")
        migrate.upgrade(db)
        yield db
        db.dispose()
    finally:
        if not KEEP_SCHEMA:
            with psycopg.connect(plain, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def loaded_groups(db: Database) -> int:
    """Groups already indexed (a kept schema): one Patient with a KVNR per group, from 0 on."""
    with db.read() as conn:
        found = conn.execute(
            text(
                "SELECT count(*) FROM idx_token WHERE res_type = 'Patient' AND param = 'identifier'"
            )
        ).scalar_one()
    return int(found)


def load(service: ResourceService, groups: range) -> float:
    """Load groups in transactions; resources per second."""
    start = time.perf_counter()
    count = 0
    for first in range(groups.start, groups.stop, BUNDLE_GROUPS):
        process(service, bundle(first), "")
        count += BUNDLE_GROUPS * GROUP
    return count / (time.perf_counter() - start)


Query = tuple[str, list[tuple[str, str]]]


def query_mix(n_groups: int, rnd: random.Random) -> list[Query]:
    """The fixed mix of the issue, with random values drawn from the loaded data."""
    n = rnd.randrange(n_groups)
    return [
        (
            "patient+code",
            [
                ("subject", _patient_id_placeholder(n)),
                ("code", f"http://loinc.org|{LOINC[n % len(LOINC)]}"),
            ],
        ),
        ("date range", [("date", _day(n)[:10]), ("code", f"http://loinc.org|{LOINC[0]}")]),
        ("identifier", [("identifier", f"http://fhir.de/sid/gkv/kvid-10|K{n:09d}")]),
        ("chained", [("subject:Patient.identifier", f"http://fhir.de/sid/gkv/kvid-10|K{n:09d}")]),
        (
            "_include",
            [
                ("identifier", f"https://ivz-bridge.example/sid/referral|R{n}"),
                ("_include", "ServiceRequest:subject"),
            ],
        ),
        (
            "_revinclude",
            [
                ("identifier", f"https://ivz-bridge.example/sid/referral|R{n}"),
                ("_revinclude", "Appointment:based-on"),
            ],
        ),
        (
            "_sort _count=50",
            [
                ("code", f"http://loinc.org|{LOINC[n % len(LOINC)]}"),
                ("_sort", "-date"),
                ("_count", "50"),
            ],
        ),
    ]


_TYPES = {
    "patient+code": "Observation",
    "date range": "Observation",
    "identifier": "Patient",
    "chained": "Observation",
    "_include": "ServiceRequest",
    "_revinclude": "ServiceRequest",
    "_sort _count=50": "Observation",
}


def _patient_id_placeholder(n: int) -> str:
    return f"@patient{n}"


def run_mix(search: SearchService, db: Database, n_groups: int) -> dict[str, list[float]]:
    rnd = random.Random(7)
    timings: dict[str, list[float]] = {}
    ids = _patient_ids(db)
    for _ in range(RUNS):
        for name, pairs in query_mix(n_groups, rnd):
            pairs = [(k, ids.get(v, v)) for k, v in pairs]
            timings.setdefault(name, []).append(_timed(search, _TYPES[name], pairs))
            if name == "_sort _count=50":
                first = search.search([_TYPES[name]], pairs)
                if first.next_cursor:
                    paged = [*pairs, ("_page", first.next_cursor)]
                    timings.setdefault("second page", []).append(
                        _timed(search, _TYPES[name], paged)
                    )
    return timings


def _patient_ids(db: Database) -> dict[str, str]:
    """Map placeholders to the real ids (server-assigned) via the KVNR."""
    with db.read() as conn:
        rows = conn.execute(
            text(
                "SELECT t.code, r.res_id FROM idx_token t JOIN resources r ON r.res_pk = t.res_pk"
                " WHERE t.res_type = 'Patient' AND t.param = 'identifier'"
            )
        ).all()
    return {f"@patient{int(code[1:])}": f"Patient/{rid}" for code, rid in rows}


def _timed(search: SearchService, rtype: str, pairs: list[tuple[str, str]]) -> float:
    start = time.perf_counter()
    search.search([rtype], pairs)
    return (time.perf_counter() - start) * 1000


def explain(db: Database, search: SearchService, n_groups: int) -> None:
    """EXPLAIN ANALYZE of every query in the mix (PostgreSQL), kept under bench/plans/."""
    if db.is_sqlite:
        return
    from sqlalchemy import event

    PLANS.mkdir(exist_ok=True)
    ids = _patient_ids(db)
    captured: list[tuple[str, Any]] = []

    def capture(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any
    ) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "SET LOCAL", "RESET")):
            captured.append((statement, params))

    queries: list[tuple[str, str, list[tuple[str, str]]]] = []
    for name, pairs in query_mix(n_groups, random.Random(11)):
        pairs = [(k, ids.get(v, v)) for k, v in pairs]
        queries.append((name, _TYPES[name], pairs))
        if name == "_sort _count=50":
            first = search.search([_TYPES[name]], pairs)
            if first.next_cursor:
                paged = [*pairs, ("_page", first.next_cursor)]
                queries.append(("second page", _TYPES[name], paged))
    for name, rtype, pairs in queries:
        captured.clear()
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            search.search([rtype], pairs)
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        lines = [f"-- {name}: {rtype}?{'&'.join(f'{k}={v}' for k, v in pairs)}"]
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            for statement, params in captured:
                if not statement.upper().startswith("SELECT"):
                    cur.execute(statement)  # the walk's planner settings, in the same transaction
                    lines += ["", statement]
                    continue
                explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) "
                cur.execute(explain + statement, params)
                lines += ["", statement, *[r[0] for r in cur.fetchall()]]
            raw.rollback()
        finally:
            raw.close()
        slug = name.replace(" ", "_").replace("+", "_").replace("=", "")
        (PLANS / f"{slug}.txt").write_text("\n".join(lines) + "\n")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def main() -> None:
    kind = os.environ.get("IVZ_BENCH_DATABASE", "postgres")
    sizes = [int(s) for s in os.environ.get("IVZ_BENCH_SEARCH_SIZES", "10000,100000").split(",")]
    print(
        f"ivz-bridge search benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {kind}, "
        f"{os.cpu_count()} cores; {RUNS} runs of each query per size, in-process"
    )
    with database(kind) as db:
        service = ResourceService(db)
        plain = ResourceService(db, registry=Registry())  # no search parameters: no indexing
        groups_loaded = loaded_groups(db)
        if groups_loaded:
            print(f"schema {KEEP_SCHEMA} holds {groups_loaded * GROUP:,} indexed resources")
        reference: float | None = None
        if max(sizes) // GROUP > groups_loaded:
            # Write cost without and with indexing, same data shape, same run.
            reference = load(plain, range(10**7, 10**7 + 40 * BUNDLE_GROUPS))
        table: list[str] = []
        for size in sizes:
            target_groups = size // GROUP
            if target_groups > groups_loaded:
                rate = load(service, range(groups_loaded, target_groups))
                groups_loaded = target_groups
                assert reference is not None
                loaded = (
                    f"loaded at {rate:,.0f} resources/s with indexing "
                    f"(without: {reference:,.0f}/s; indexing adds "
                    f"{(reference / rate - 1) * 100:.0f}% to the write cost)"
                )
            else:
                loaded = f"kept schema, {groups_loaded * GROUP:,} resources loaded before"
            with db.write() as conn:
                if not db.is_sqlite:
                    conn.exec_driver_sql("ANALYZE")
            timings = run_mix(service.search, db, groups_loaded)
            table.append(f"\n{size:,} resources: {loaded}")
            table.append(f"  {'query':<20} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
            for name, values in timings.items():
                table.append(
                    f"  {name:<20} {statistics.median(values):>8.1f} "
                    f"{percentile(values, 0.95):>8.1f} {max(values):>8.1f}"
                )
            print("\n".join(table[-(len(timings) + 2) :]), flush=True)
        explain(db, service.search, groups_loaded)
    if kind != "sqlite":
        print(f"\nquery plans written to {PLANS}/")


if __name__ == "__main__":
    main()

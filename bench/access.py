"""What the access rules cost a restricted client, beside an administrator in the same run.

``.venv/bin/python -m bench.access`` writes ``IVZ_BENCH_CASES`` (default 10,000) second-opinion
cases (Patient, Coverage, Condition, referral, Appointment, three Observations; ten insurers,
thirty teams, twenty hospitals) into a private PostgreSQL schema (dropped afterwards), then
runs the same reads and searches in-process as an administrator (no rule: the reference)
and as an insurer, a team and a hospital EHR (docs/access.md). It prints p50/p95 in ms and
each restricted p50 as a multiple of the administrator's. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.pgschema import private_schema
from fhir_server.access.policy import Access
from fhir_server.service.resources import ResourceService
from fhir_server.service.transaction import process, put_bundle
from fhir_server.storage.database import Database

POSTGRES_URL = os.environ.get(
    "IVZ_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CASES = int(os.environ.get("IVZ_BENCH_CASES", "10000"))
RUNS = int(os.environ.get("IVZ_BENCH_RUNS", "30"))
INSURERS, TEAMS, HOSPITALS = 10, 30, 20
IK_SYSTEM = "http://fhir.de/sid/arge-ik/iknr"
LOINC_PAIN = ("http://loinc.org", "72514-3")
_FAMILY = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker")


def _ref(target: str) -> dict[str, str]:
    return {"reference": target}


def case(n: int) -> list[dict[str, Any]]:
    """One case: insurer n % 10, team n % 30, hospital n % 20."""
    p, c, d, r, a = (f"{kind}-{n}" for kind in ("p", "c", "d", "r", "a"))
    ik = f"1000000{n % INSURERS:02d}"
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": p,
            "name": [{"family": _FAMILY[n % len(_FAMILY)], "given": [f"G{n}"]}],
            "birthDate": f"{1940 + n % 60}-0{1 + n % 9}-1{n % 10}",
        },
        {
            "resourceType": "Coverage",
            "id": c,
            "status": "active",
            "beneficiary": _ref(f"Patient/{p}"),
            "payor": [{"identifier": {"system": IK_SYSTEM, "value": ik}}],
        },
        {"resourceType": "Condition", "id": d, "subject": _ref(f"Patient/{p}")},
        {
            "resourceType": "ServiceRequest",
            "id": r,
            "status": "active",
            "intent": "order",
            "subject": _ref(f"Patient/{p}"),
            "requester": _ref(f"Organization/h{n % HOSPITALS}"),
            "reasonReference": [_ref(f"Condition/{d}")],
            "insurance": [_ref(f"Coverage/{c}")],
        },
        {
            "resourceType": "Appointment",
            "id": a,
            "status": "booked",
            "basedOn": [_ref(f"ServiceRequest/{r}")],
            "participant": [
                {"actor": _ref(f"Patient/{p}"), "status": "accepted"},
                {"actor": _ref(f"HealthcareService/t{n % TEAMS}"), "status": "accepted"},
            ],
        },
    ]
    for k in range(3):
        out.append(
            {
                "resourceType": "Observation",
                "id": f"o-{n}-{k}",
                "status": "final",
                "code": {"coding": [{"system": LOINC_PAIN[0], "code": LOINC_PAIN[1]}]},
                "subject": _ref(f"Patient/{p}"),
                "basedOn": [_ref(f"ServiceRequest/{r}")],
                "effectiveDateTime": f"2026-0{1 + k}-1{n % 10}T10:00:00+00:00",
                "valueInteger": (n + k) % 11,
            }
        )
    return out


def _url(resource: dict[str, Any]) -> str:
    return f"{resource['resourceType']}/{resource['id']}"


def load(service: ResourceService, cases: int) -> None:
    for start in range(0, cases, 20):
        resources = [r for n in range(start, min(cases, start + 20)) for r in case(n)]
        process(service, put_bundle(resources), "http://bench.example/fhir")
    service.refresh_statistics()


CLIENTS: dict[str, Access | None] = {
    "admin": None,
    "insurer": Access("bench-insurer", "insurer", "100000007"),
    "team": Access("bench-team", "team", "t7"),
    "ehr": Access("bench-ehr", "ehr", "h7"),
}
#: A case every restricted client above may see: insurer 7, team 7, hospital 7.
SHARED_CASE = 7


def queries(service: ResourceService) -> dict[str, Callable[[Access | None], Any]]:
    search = service.search.search
    code = f"{LOINC_PAIN[0]}|{LOINC_PAIN[1]}"
    return {
        "read Observation": lambda a: service.read("Observation", f"o-{SHARED_CASE}-0", a),
        "Observation?patient": lambda a: search(
            ["Observation"], [("patient", f"Patient/p-{SHARED_CASE}")], access=a
        ),
        "Observation?code&_count=50": lambda a: search(
            ["Observation"], [("code", code), ("_count", "50")], access=a
        ),
        "ServiceRequest?status&_count=50": lambda a: search(
            ["ServiceRequest"], [("status", "active"), ("_count", "50")], access=a
        ),
        "Patient?family&_count=50": lambda a: search(
            ["Patient"], [("family", "Weber"), ("_count", "50")], access=a
        ),
        "Observation?_include=based-on": lambda a: search(
            ["Observation"],
            [("patient", f"Patient/p-{SHARED_CASE}"), ("_include", "Observation:based-on")],
            access=a,
        ),
    }


def measure(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main() -> int:
    with private_schema(POSTGRES_URL, "acc") as url:
        db = Database(url)
        try:
            service = ResourceService(db)
            started = time.perf_counter()
            print(f"loading {CASES:,} cases ({CASES * 8:,} resources) ...", file=sys.stderr)
            load(service, CASES)
            print(f"loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            report(service)
        finally:
            db.dispose()
    return 0


def report(service: ResourceService) -> None:
    print(f"{CASES:,} cases, PostgreSQL, in-process, {RUNS} runs; p50 / p95 ms (x admin p50)")
    print("| query | " + " | ".join(CLIENTS) + " |")
    print("|" + " --- |" * (len(CLIENTS) + 1))
    for name, run in queries(service).items():
        cells = []
        reference = 0.0
        for access in CLIENTS.values():
            p50, p95 = measure(lambda: run(access), RUNS)  # noqa: B023
            if access is None:
                reference = p50
                cells.append(f"{p50:.1f} / {p95:.1f}")
            else:
                cells.append(f"{p50:.1f} / {p95:.1f} (x{p50 / reference:.1f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())

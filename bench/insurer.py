"""Insurer import throughput: a generated export into PostgreSQL, beside the server's own
transaction rate measured in the same run.

``.venv/bin/python -m bench.insurer`` generates ``IVZ_BENCH_ROWS`` (default 100,000) rows in
the ``tk`` layout, imports them into a private schema (dropped afterwards), imports the same
file again (nothing may change), and runs 100-entry transaction Bundles of the same kinds of
resources through ``fhir_server.service.transaction.process`` in-process. It prints rows/s,
resources/s, process CPU per row (this process and its import workers; the machine is shared,
so CPU is the figure that compares runs) and where the import spends its time.
``IVZ_BENCH_WORKERS`` fixes the writer processes; ``IVZ_BENCH_PATHWAY=1`` adds the pathway's
rules and seeded teams, so active referrals are booked. docs/insurer-adapter.md has results.
"""

from __future__ import annotations

import os
import random
import resource
import sys
import time
import uuid
from datetime import date, timedelta
from typing import Any

from adapters.insurer.ingest import DEFAULT_BATCH, ingest
from adapters.insurer.report import Report
from adapters.insurer.validators import ik_check_digit, kvnr_check_digit, lanr_check_digit
from bench.pgschema import private_schema
from fhir_server.service.resources import ResourceService
from fhir_server.service.transaction import process
from fhir_server.storage.database import Database

POSTGRES_URL = os.environ.get(
    "IVZ_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ROWS = int(os.environ.get("IVZ_BENCH_ROWS", "100000"))
BATCH = int(os.environ.get("IVZ_BENCH_BATCH", str(DEFAULT_BATCH)))
TX_BUNDLES = int(os.environ.get("IVZ_BENCH_TX_BUNDLES", "40"))
#: Writer processes; unset: what ``ingest`` chooses (one per core for large files).
WORKERS = int(os.environ["IVZ_BENCH_WORKERS"]) if os.environ.get("IVZ_BENCH_WORKERS") else None
#: 1: run with the pathway's rules and seeded teams, so each active referral is booked (as
#: ``ivz ingest insurer`` and the server do); default off, the figures of the write path alone.
PATHWAY = os.environ.get("IVZ_BENCH_PATHWAY", "0") == "1"

HEADER = (
    "Fallnummer;Eingangsdatum;KVNR;IK_Kasse;Kasse;Nachname;Vorname;Geburtsdatum;Geschlecht;PLZ;"
    "Ort;Telefon;EMail;Diagnosen_ICD10GM;OPS_Code;OPS_Text;Operateur_LANR;Operateur_Name;"
    "Klinik_IK;Klinik_Name;OP_Termin;Einwilligung;Bemerkung"
)
_FAMILY = ("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker")
_GIVEN = ("Anna", "Jonas", "Lea", "Noah", "Mia", "Elias", "Emma", "Luca", "Sofia", "Ben")
_CITIES = (("20095", "Hamburg"), ("10115", "Berlin"), ("80331", "München"), ("50667", "Köln"))
_ICD = ("M51.2", "M54.5", "M54.4", "M51.1", "M48.06", "M48.07", "M53.26", "F45.41")
_OPS = (("5-836.30", "Spondylodese, dorsal, 1 Segment"), ("5-831.0", "Exzision Bandscheibe"))
_SEX = ("w", "m", "w", "m", "d", "x")


def kvnr(n: int) -> str:
    body = f"{chr(ord('A') + n % 26)}{n % 10**8:08d}"
    return f"{body}{kvnr_check_digit(body)}"


def ik(prefix: str, n: int) -> str:
    body = f"{prefix}{n % 10**6:06d}"
    return f"{body}{ik_check_digit(body)}"


def lanr(n: int) -> str:
    """A well-formed LANR (check digit, specialty group 00) for surgeon ``n``."""
    six = f"{100000 + n * 37:06d}"
    return f"{six}{lanr_check_digit(six)}00"


def export(rows: int, seed: int = 7, first: int = 0) -> bytes:
    """A TK export of ``rows`` referrals: 300 hospitals, 2,000 surgeons, 80% consent;
    ``first`` shifts case numbers and KVNRs so that exports do not overlap."""
    rnd = random.Random(seed)
    lines = [HEADER]
    start = date(2024, 1, 2)
    for i in range(first, first + rows):
        zip_code, city = _CITIES[i % len(_CITIES)]
        ops_code, ops_text = _OPS[i % len(_OPS)]
        hospital = i % 300
        diagnoses = ";".join(rnd.sample(_ICD, 1 + i % 3))
        received = start + timedelta(days=i % 300)
        lines.append(
            ";".join(
                [
                    f"TK-{i:07d}",
                    f"{received.isoformat()}T{8 + i % 10:02d}:15:00",
                    kvnr(i * 7919 + 13),
                    "101575519",
                    "Techniker Krankenkasse",
                    _FAMILY[i % len(_FAMILY)],
                    _GIVEN[i % len(_GIVEN)],
                    f"{1 + i % 28:02d}.{1 + i % 12:02d}.{1940 + i % 60}",
                    _SEX[i % len(_SEX)],
                    zip_code,
                    city,
                    f"040 {1000000 + i}",
                    f"p{i}@example.de",
                    f'"{diagnoses}"',
                    ops_code,
                    ops_text,
                    lanr(i % 2000),
                    f"Dr. med. Operateur {i % 2000}",
                    ik("26", 100 + hospital * 7),
                    f"Klinik {hospital}",
                    (received + timedelta(days=40)).isoformat(),
                    "ja" if i % 5 else "nein",
                    "" if i % 4 else "Patient wünscht Termin vormittags",
                ]
            )
        )
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _bundles(count: int, first: int = 0) -> list[dict[str, Any]]:
    """100-entry transactions of the resources a referral becomes (POST, urn:uuid links);
    ``first`` shifts the rows as in :func:`export`."""
    from adapters.insurer import resources
    from adapters.insurer.layout import load
    from adapters.insurer.reader import read
    from adapters.insurer.referral import Referral, parse

    layout = load("tk")
    referrals = [
        r
        for r in (
            parse(rec, layout) for rec in read(export(count * 12, first=first), layout).records
        )
    ]
    bundles = []
    for b in range(count):
        entries: list[dict[str, Any]] = []
        for r in referrals[b * 12 : (b + 1) * 12]:
            assert isinstance(r, Referral)
            ids = {k: f"urn:uuid:{uuid.uuid4()}" for k in ("p", "c", "s", "x")}
            links = resources.Links(ids["p"], ids["x"], r.insurer_name, ids["c"], None, None)
            group: list[tuple[str, dict[str, Any]]] = [
                (ids["p"], resources.patient(r)),
                (ids["c"], resources.coverage(r, links)),
                (f"urn:uuid:{uuid.uuid4()}", resources.proposal(r, links, "2024")),
                (ids["s"], resources.referral_request(r, links)),
            ]
            group += [
                (f"urn:uuid:{uuid.uuid4()}", resources.condition(r, c, links, "2024"))
                for c in r.diagnoses
            ]
            for full_url, res in group:
                _strip_local_refs(res)
                entries.append(
                    {
                        "fullUrl": full_url,
                        "resource": res,
                        "request": {"method": "POST", "url": res["resourceType"]},
                    }
                )
        bundles.append({"resourceType": "Bundle", "type": "transaction", "entry": entries[:100]})
    return bundles


def _strip_local_refs(res: dict[str, Any]) -> None:
    """Keep only references that point into the bundle (urn:uuid) or nowhere in particular."""
    for key in ("requester", "reasonReference", "supportingInfo", "performer"):
        res.pop(key, None)
    for payor in res.get("payor", []):
        payor.pop("reference", None)


def _cpu() -> float:
    """Process CPU seconds of this process and its finished workers (the machine is shared,
    so CPU per row is the figure that compares runs; PostgreSQL's own CPU is not in it)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed_ingest(service: ResourceService, data: bytes) -> tuple[Report, float, float]:
    """The report, wall seconds and CPU seconds of one import."""
    started, cpu = time.perf_counter(), _cpu()
    report = ingest(service, data, "tk", batch_size=BATCH, workers=WORKERS)
    return report, time.perf_counter() - started, _cpu() - cpu


def _phases(report: Report) -> str:
    total = report.timings.get("total", 0.0) or 1.0
    parts = [
        f"{name} {seconds:.1f}s ({seconds / total:.0%})"
        for name, seconds in report.timings.items()
        if name != "total"
    ]
    return ", ".join(parts)


def main() -> int:
    print(f"generating {ROWS:,} rows ...", file=sys.stderr)
    data = export(ROWS)
    with private_schema(POSTGRES_URL, "ins") as url:
        db = Database(url)
        try:
            return _run(db, data)
        finally:
            db.dispose()


def _service(db: Database) -> ResourceService:
    """The service, with the pathway's rules and 30 teams with Slots for 60 days if asked."""
    if not PATHWAY:
        return ResourceService(db)
    from fhir_server.logging import configure
    from fhir_server.pathway.rules import pathway_hooks
    from fhir_server.pathway.teams import seed_teams

    configure("WARNING")  # one line per booking otherwise
    service = ResourceService(db, hooks=pathway_hooks())
    seed_teams(service, date.today(), 60, 6)
    return service


def _run(db: Database, data: bytes) -> int:
    """Import, re-import, then transaction Bundles of the same resources; print the rates."""
    service = _service(db)
    ingest(service, export(20, first=10**7), "tk")  # warm caches, create no overlap
    print("first import ...", file=sys.stderr)
    first, t1, c1 = _timed_ingest(service, data)
    print("re-import ...", file=sys.stderr)
    again, t2, c2 = _timed_ingest(service, data)
    print("transaction bundles ...", file=sys.stderr)
    bundles = _bundles(TX_BUNDLES)
    plain = ResourceService(db)  # the reference rate is the write path's, without rules
    process(plain, bundles.pop(), "http://bench/fhir")  # warm-up
    entries = sum(len(b["entry"]) for b in bundles)
    started, cpu = time.perf_counter(), _cpu()
    for bundle in bundles:
        process(plain, bundle, "http://bench/fhir")
    t3, c3 = time.perf_counter() - started, _cpu() - cpu
    written = first.resources_created + first.resources_updated
    print(
        f"insurer import benchmark, PostgreSQL, {ROWS:,} rows, batch {BATCH}, "
        f"{first.workers} worker(s), {'with' if PATHWAY else 'without'} pathway rules, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"first import:  {first.rows / t1:8,.0f} rows/s  {written / t1:8,.0f} resources/s  "
        f"CPU {1000 * c1 / first.rows:.2f} ms/row, {1e6 * c1 / max(written, 1):.0f} µs/resource "
        f"({t1:.1f} s; {first.summary()}; {written:,} resources)"
    )
    print(f"  phases: {_phases(first)}")
    print(
        f"re-import:     {again.rows / t2:8,.0f} rows/s  CPU {1000 * c2 / again.rows:.2f} ms/row "
        f"({t2:.1f} s; {again.summary()}; "
        f"{again.resources_created + again.resources_updated} resources written)"
    )
    print(f"  phases: {_phases(again)}")
    print(
        f"transactions:  {entries / t3:8,.0f} resources/s  "
        f"CPU {1e6 * c3 / entries:.0f} µs/resource "
        f"({len(bundles)} bundles of ~100 POST entries via transaction.process, {t3:.1f} s)"
    )
    ok = again.resources_created + again.resources_updated == 0 and first.rejected == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

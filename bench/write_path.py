"""``python -m bench.write_path``: the CPU cost of the per-resource write path, no database.

Takes the resources the other benchmarks write (the REST transaction bundles of
``bench/data.py``, the HL7 v2 ORU^R01 of ``bench/hl7v2.py`` after conversion, the insurer
referrals of ``bench/insurer.py``), stamps them as the service does (id, meta) and times, per
resource, each stage a write runs before SQL:

* ``parse``: the request body (``fhir.jsonio.loads``: decimals, duplicate keys, depth);
* ``validate``: ``service.validation.validate_resource`` as a whole, and its parts: the R4
  JSON schema, the fhir.resources (R4B) model, narratives, required bindings, profiles; on
  the resource as sent (without the ``meta`` the service adds after validation);
* ``extract``: search-index values (``search.extract.extract``);
* ``rows``: index rows for the tables (``storage.search_index.row_tuples``);
* ``dumps``: the stored bytes (``fhir.jsonio.dumps``).

The reference, measured in the same run, is ``orjson.loads`` + ``orjson.dumps`` of each
resource's JSON. Times are process CPU time (``time.process_time_ns``), best of several
rounds, so other jobs on the shared cores move them less than wall-clock rates.

Knobs (environment): IVZ_BENCH_ROUNDS (5), IVZ_BENCH_WP_BUNDLES (3 REST bundles),
IVZ_BENCH_WP_MESSAGES (20 ORU), IVZ_BENCH_WP_ROWS (100 insurer rows). ``--profile`` runs
cProfile over the whole path instead and prints the top functions.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from fhir_server.fhir import jsonio

ROUNDS = int(os.environ.get("IVZ_BENCH_ROUNDS", "5"))
BUNDLES = int(os.environ.get("IVZ_BENCH_WP_BUNDLES", "3"))
MESSAGES = int(os.environ.get("IVZ_BENCH_WP_MESSAGES", "20"))
ROWS = int(os.environ.get("IVZ_BENCH_WP_ROWS", "100"))

Resource = dict[str, Any]


def _stamped(bundle: dict[str, Any]) -> list[Resource]:
    """The bundle's resources as the service stores them (ids, meta, local references)."""
    from bench import data

    when = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    plain = orjson.loads(jsonio.dumps(bundle))  # decimals as floats, as stored_form expects
    return [jsonio.loads(raw) for _, _, raw in data.stored_form(plain, when)]


def rest_resources(batch: int) -> list[Resource]:
    from bench.data import transaction

    return [r for i in range(BUNDLES) for r in _stamped(transaction(batch * BUNDLES + i))]


def hl7_resources(batch: int) -> list[Resource]:
    from adapters.hl7v2.convert import convert
    from bench.hl7v2 import oru_r01

    out: list[Resource] = []
    for n in range(batch * MESSAGES, (batch + 1) * MESSAGES):
        bundle = convert(oru_r01(n)).bundle
        for e in bundle["entry"]:  # PUT entries: stored_form keys the new ids by fullUrl
            e.setdefault("fullUrl", f"urn:uuid:{e['resource'].get('id', '')}")
        out += _stamped(bundle)
    return out


def insurer_resources(batch: int) -> list[Resource]:
    from bench.insurer import _bundles

    count = max(1, ROWS // 12)
    return [r for b in _bundles(count, first=batch * count * 12) for r in _stamped(b)]


#: Each workload's resources, by batch: batches share what real traffic shares (codes,
#: the ordering physician...) but not ids, names or values.
WORKLOADS: dict[str, Callable[[int], list[Resource]]] = {
    "rest": rest_resources,
    "hl7v2": hl7_resources,
    "insurer": insurer_resources,
}


def _reset() -> None:
    """Forget what the write path remembers between resources (memoized validation)."""
    from fhir_server.fhir import models

    clear = getattr(models, "clear_cache", None)
    if clear is not None:
        clear()


def _stages() -> dict[str, Callable[[Resource], Any]]:
    from fhir_server.fhir.bindings import check_required_bindings
    from fhir_server.fhir.models import validate_model
    from fhir_server.fhir.narrative import check_narratives
    from fhir_server.fhir.schema import validate_structure
    from fhir_server.profiles.registry import claimed_profile_issues
    from fhir_server.search.extract import extract
    from fhir_server.search.registry import default_registry
    from fhir_server.service.validation import validate_resource
    from fhir_server.storage import search_index

    registry = default_registry()
    extracted: dict[int, Any] = {}
    raws: dict[int, bytes] = {}
    # What the write path builds for the index tables (older trees: dicts, for comparison).
    rows = getattr(search_index, "row_tuples", None) or search_index.rows_by_table

    posted: dict[int, Resource] = {}

    def sent(res: Resource) -> Resource:
        """The resource as validated: before the service stamps ``meta`` (ids stay: PUT)."""
        found = posted.get(id(res))
        if found is None:
            found = posted[id(res)] = {k: v for k, v in res.items() if k != "meta"}
        return found

    def parse(res: Resource) -> Any:
        raw = raws.get(id(res))
        if raw is None:
            raw = raws[id(res)] = jsonio.dumps(res)
        return jsonio.loads(raw)

    def do_extract(res: Resource) -> Any:
        values = extract(res, registry, base_url="http://bench/fhir")
        extracted[id(res)] = values
        return values

    return {
        "parse": parse,
        "validate": lambda r: validate_resource(sent(r), r["resourceType"]),
        "  schema": lambda r: validate_structure(sent(r)),
        "  model": lambda r: validate_model(sent(r)),
        "  narrative": lambda r: check_narratives(sent(r)),
        "  bindings": lambda r: check_required_bindings(sent(r)),
        "  profiles": lambda r: claimed_profile_issues(sent(r)),
        "extract": do_extract,
        "rows": lambda r: rows(1, extracted[id(r)]),
        "dumps": jsonio.dumps,
    }


#: Stages whose sum is the write path (the indented ones are parts of ``validate``).
PATH = ("parse", "validate", "extract", "rows", "dumps")


def _time(fn: Callable[[Resource], Any], warm: list[Resource], resources: list[Resource]) -> float:
    """Best per-resource CPU µs over ROUNDS rounds, each on resources not seen before: the
    caches are cleared and warmed with ``warm`` (another batch) first."""
    stages = _stages()
    best = float("inf")
    for _ in range(ROUNDS):
        _reset()
        for res in warm:
            for label in PATH:
                stages[label](res)
        started = time.process_time_ns()
        for res in resources:
            fn(res)
        best = min(best, (time.process_time_ns() - started) / len(resources) / 1000)
    return best


def _reference(resources: list[Resource]) -> float:
    raws = [jsonio.dumps(r) for r in resources]
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.process_time_ns()
        for raw in raws:
            orjson.dumps(orjson.loads(raw))
        best = min(best, (time.process_time_ns() - started) / len(raws) / 1000)
    return best


def measure(warm: list[Resource], resources: list[Resource]) -> dict[str, float]:
    stages = _stages()
    pristine = copy.deepcopy(resources)
    for res in resources:  # every stage must accept every resource, and modify none
        for label in PATH:
            stages[label](res)
    assert resources == pristine, "a stage modified its input"
    out = {label: _time(fn, warm, resources) for label, fn in stages.items()}
    out["reference"] = _reference(resources)
    return out


def _print(name: str, resources: list[Resource], figures: dict[str, float]) -> None:
    kinds: dict[str, int] = {}
    for r in resources:
        kinds[r["resourceType"]] = kinds.get(r["resourceType"], 0) + 1
    mix = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    total = sum(figures[s] for s in PATH)
    print(f"\n{name}: {len(resources)} resources ({mix})")
    for label, us in figures.items():
        if label == "reference":
            continue
        print(f"  {label:<12} {us:8.1f} µs")
    ref = figures["reference"]
    print(f"  {'path total':<12} {total:8.1f} µs  {1e6 / total:9,.0f} resources/s")
    print(f"  {'reference':<12} {ref:8.1f} µs  {1e6 / ref:9,.0f} resources/s (orjson loads+dumps)")
    print(f"  path / reference: {total / ref:.1f}x")


def _profile(warm: list[Resource], resources: list[Resource], sort: str, top: int) -> None:
    stages = _stages()
    for res in warm:  # warm-up outside the profile
        for label in PATH:
            stages[label](res)
    profiler = cProfile.Profile()
    profiler.enable()
    for res in resources:
        for label in PATH:
            stages[label](res)
    profiler.disable()
    pstats.Stats(profiler, stream=sys.stdout).sort_stats(sort).print_stats(top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", choices=[*WORKLOADS, []], default=[])
    parser.add_argument("--profile", action="store_true", help="cProfile instead of timing")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    names = args.workloads or list(WORKLOADS)
    for name in names:
        warm, resources = WORKLOADS[name](0), WORKLOADS[name](1)
        if args.profile:
            print(f"\n== {name}: {len(resources)} resources")
            _profile(warm, resources, args.sort, args.top)
        else:
            _print(name, resources, measure(warm, resources))


if __name__ == "__main__":
    main()

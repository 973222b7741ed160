"""``python -m bench.hl7v2``: HL7 v2 intake end to end, beside the bare parse rates.

One ORU^R01 with 10 OBX, made unique per send (MSH-10, patient, order), goes over MLLP from
several concurrent senders to ``ivz hl7 mllp`` listener processes (sharing the port with
SO_REUSEPORT) into PostgreSQL: store, convert, apply the FHIR transaction, record, ACK. The
same message is parsed by python-hl7 and hl7apy in the same run, so the end-to-end rate can
be read against what the libraries alone manage on this machine.

Knobs (environment): IVZ_BENCH_POSTGRES_URL, IVZ_BENCH_SECONDS (10), IVZ_BENCH_WARMUP (3),
IVZ_BENCH_SENDERS (8), IVZ_BENCH_LISTENERS ("1,2": one measurement per listener count),
IVZ_BENCH_HL7_RUNS ("shared,unique,intake": which of the three loads to run).

``python -m bench.hl7v2 cpu [N]``: no sockets, no concurrency: N messages (300) through
``Intake.ingest`` in this process, with the listener's process CPU time, SQL statements and
commits per message -- the figure to compare changes by while other jobs share the cores.
The schema is private to the run and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from adapters.hl7v2.ack import read_ack
from adapters.mllp import MLLPClient
from bench.pgschema import private_schema
from fhir_server.logging import configure as configure_logging
from fhir_server.storage.database import Database

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
OBX_COUNT = 10
_RUN = secrets.token_hex(3).upper()


def oru_r01(n: int, shared: bool = True) -> bytes:
    """The benchmark message, number ``n``: its own control id, patient and order.

    ``shared``: every message names the same ordering physician and ward, as a real lab feed
    does, so every transaction also updates those two resources (hot rows). Otherwise they
    too are unique per message: the rate without that contention.
    """
    ts = "20261125083000"
    doctor = "4711" if shared else f"D{_RUN}{n}"
    ward = "ORTHO" if shared else f"W{_RUN}{n}"
    segments = [
        f"MSH|^~\\&|LIS|KLINIKUM-NORD|IVZ|ZWEITMEINUNG|{ts}||ORU^R01^ORU_R01|"
        f"B{_RUN}{n:09d}|P|2.5.1",
        f"PID|1||BP{_RUN}{n}^^^KLINIKUM-NORD^MR||Musterfrau^Erika^^^^^L||19650412|F|||"
        "Lindenweg 5^^Hamburg^^20095^DEU",
        f"PV1|1|O|{ward}^^^KLINIKUM-NORD||||{doctor}^Wirbel^Anna^^^Dr.",
        f"ORC|RE|P{_RUN}{n}|F{_RUN}{n}",
        f"OBR|1|P{_RUN}{n}|F{_RUN}{n}|24323-8^Comprehensive metabolic panel^LN|||{ts}|||||||"
        f"{ts}||{doctor}^Wirbel^Anna|||||||{ts}|||F",
    ]
    tests = [
        ("2345-7", "Glucose", "mg/dL", "70-99"),
        ("2160-0", "Creatinine", "mg/dL", "0.6-1.2"),
        ("3094-0", "Urea nitrogen", "mg/dL", "7-20"),
        ("2951-2", "Sodium", "mmol/L", "136-145"),
        ("2823-3", "Potassium", "mmol/L", "3.5-5.1"),
        ("2075-0", "Chloride", "mmol/L", "98-107"),
        ("2028-9", "Carbon dioxide", "mmol/L", "23-29"),
        ("17861-6", "Calcium", "mg/dL", "8.6-10.3"),
        ("2885-2", "Protein", "g/dL", "6.0-8.3"),
        ("1751-7", "Albumin", "g/dL", "3.5-5.0"),
    ]
    for i, (code, name, unit, ref) in enumerate(tests[:OBX_COUNT], start=1):
        value = f"{(n * 7 + i * 13) % 90 + 5}.{i}"
        segments.append(f"OBX|{i}|NM|{code}^{name}^LN||{value}|{unit}^^UCUM|{ref}|N|||F|||{ts}")
    return ("\r".join(segments) + "\r").encode()


# --- bare parse rates -----------------------------------------------------------------------


def _rate(fn: Callable[[], object], seconds: float = 2.0) -> float:
    fn()
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(10):
            fn()
        done += 10
    return done / elapsed


def parse_rates(raw: bytes) -> dict[str, float]:
    """Messages/s of the libraries (and of our own parse/convert) on one core."""
    import hl7
    from hl7apy.parser import parse_message

    text = raw.decode()
    rates = {
        "python-hl7 hl7.parse": _rate(lambda: hl7.parse(text)),
        "hl7apy parse_message": _rate(lambda: parse_message(text), 3.0),
    }
    with contextlib.suppress(ImportError):
        from adapters.hl7v2.parse import parse

        rates["ivz parse"] = _rate(lambda: parse(raw))
    with contextlib.suppress(ImportError):
        from adapters.hl7v2.convert import convert

        rates["ivz convert (parse + map)"] = _rate(lambda: convert(raw))
    return rates


# --- the database and the listeners ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def listeners(url: str, count: int, apply: bool = True) -> Iterator[int]:
    """``count`` listener processes sharing one port; yields the port.

    ``apply`` False: the bench's own listener, whose worker converts but applies an empty
    bundle -- everything of the intake except the FHIR write, to show what that costs.
    """
    port = _free_port()
    env = {**os.environ, "IVZ_LOG_LEVEL": "WARNING"}
    if apply:
        cmd = [sys.executable, "-m", "adapters.hl7v2.cli", "mllp", "--port", str(port)]
        cmd += ["--database-url", url, "--reuse-port"]
    else:
        cmd = [sys.executable, "-m", "bench.hl7v2", "listen-without-apply", str(port), url]
    procs = [subprocess.Popen(cmd, env=env) for _ in range(count)]
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the MLLP listener did not start")
            time.sleep(0.1)
        time.sleep(0.5 * count)  # let every process bind before the load starts
        yield port
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Result:
    listeners: int
    senders: int
    seconds: float
    messages: int
    not_accepted: int
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def percentile(self, q: int) -> float:
        if len(self.latencies_ms) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100)[q - 1]


async def _load(
    port: int, senders: int, warmup: float, seconds: float, shared: bool
) -> tuple[int, int, list[float]]:
    numbers = itertools.count()
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + seconds
    counted, rejected, latencies = 0, 0, []

    async def sender() -> None:
        nonlocal counted, rejected
        async with await MLLPClient.connect("127.0.0.1", port) as client:
            while (now := time.monotonic()) < stop_at:
                n = next(numbers)
                raw = oru_r01(n, shared)
                sent = time.perf_counter()
                reply = read_ack(await client.request(raw, 60))
                took = (time.perf_counter() - sent) * 1000
                if now >= measure_from:
                    counted += 1
                    latencies.append(took)
                    ok = reply.code == "AA" and reply.acknowledged_id == f"B{_RUN}{n:09d}"
                    rejected += not ok

    await asyncio.gather(*(sender() for _ in range(senders)))
    return counted, rejected, latencies


def run_load(
    port: int, listeners_count: int, senders: int, warmup: float, seconds: float, shared: bool
) -> Result:
    counted, rejected, latencies = asyncio.run(_load(port, senders, warmup, seconds, shared))
    return Result(listeners_count, senders, seconds, counted, rejected, latencies)


def processed_count(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        from fhir_server.service.messages import MessageService

        return MessageService(db).counts()
    finally:
        db.dispose()


def _listen_without_apply(port: int, url: str) -> None:
    """A listener whose worker converts each message and then applies an empty bundle."""
    import signal

    from adapters.hl7v2.convert import convert
    from adapters.hl7v2.listener import Intake, start_mllp
    from adapters.hl7v2.types import Conversion
    from adapters.hl7v2.worker import Worker

    def convert_only(raw: bytes) -> Conversion:
        done = convert(raw)
        return Conversion(done.header, {"resourceType": "Bundle", "type": "transaction"})

    configure_logging("WARNING")

    async def serve() -> None:
        intake = Intake.open(url)
        intake.worker = Worker(intake.messages, intake.resources, converter=convert_only)
        listener = await start_mllp("127.0.0.1", port, intake, reuse_port=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await listener.close()
        intake.close()

    asyncio.run(serve())


def cpu_per_message(url: str, count: int, shared: bool) -> tuple[float, float, float]:
    """(CPU µs, SQL statements, commits) per message of ``Intake.ingest``, one at a time."""
    from sqlalchemy import event

    from adapters.hl7v2.listener import Intake

    counted = {"statements": 0, "commits": 0}
    with private_schema(url, "hl7cpu") as scoped:
        intake = Intake.open(scoped)
        engine = intake.resources.db.engine

        @event.listens_for(engine, "before_cursor_execute")
        def _statement(*_: object) -> None:
            counted["statements"] += 1

        @event.listens_for(engine, "commit")
        def _commit(*_: object) -> None:
            counted["commits"] += 1

        try:
            for n in range(30):  # warm-up: mappings, caches, the shared resources
                intake.ingest(oru_r01(1_000_000 + n, shared), "mllp")
            messages = [oru_r01(n, shared) for n in range(count)]
            counted.update(statements=0, commits=0)
            start = time.process_time()
            for raw in messages:
                outcome = intake.ingest(raw, "mllp")
                assert outcome.code == "AA", outcome
            spent = time.process_time() - start
        finally:
            intake.close()
            intake.resources.db.dispose()
    return (
        1e6 * spent / count,
        counted["statements"] / count,
        counted["commits"] / count,
    )


def main() -> None:
    if sys.argv[1:2] == ["listen-without-apply"]:
        _listen_without_apply(int(sys.argv[2]), sys.argv[3])
        return
    env = os.environ.get
    url = env("IVZ_BENCH_POSTGRES_URL", DEFAULT_PG_URL)
    if sys.argv[1:2] == ["cpu"]:
        configure_logging("WARNING")
        count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
        for shared in (True, False):
            cpu, statements, commits = cpu_per_message(url, count, shared)
            label = "same physician and ward" if shared else "all unique"
            print(
                f"{label:24s} {cpu:8,.0f} µs CPU per message (listener process), "
                f"{statements:4.1f} SQL statements, {commits:3.1f} commits"
            )
        return
    seconds = float(env("IVZ_BENCH_SECONDS", "10"))
    warmup = float(env("IVZ_BENCH_WARMUP", "3"))
    senders = int(env("IVZ_BENCH_SENDERS", "8"))
    counts = [int(c) for c in env("IVZ_BENCH_LISTENERS", "1,2").split(",")]
    sample = oru_r01(0)
    print(f"ORU^R01 with {OBX_COUNT} OBX, {len(sample)} bytes; {os.cpu_count()} CPUs")
    print("\nbare parse rates (one core, same message):")
    for name, rate in parse_rates(sample).items():
        print(f"  {name:28s} {rate:10,.0f} msg/s")
    runs = env("IVZ_BENCH_HL7_RUNS", "shared,unique,intake").split(",")
    print(f"\nend to end over MLLP into PostgreSQL ({senders} concurrent senders):")
    for shared in [s == "shared" for s in runs if s in ("shared", "unique")]:
        print("  same physician and ward in every message:" if shared else "  all unique:")
        for count in counts:
            with private_schema(url, "hl7") as scoped, listeners(scoped, count) as port:
                result = run_load(port, count, senders, warmup, seconds, shared)
                stored = processed_count(scoped)
            _print(result, stored)
    if "intake" not in runs:
        return
    print("  all unique, intake only (converted, FHIR write skipped):")
    for count in counts:
        with private_schema(url, "hl7") as scoped, listeners(scoped, count, apply=False) as port:
            result = run_load(port, count, senders, warmup, seconds, False)
            stored = processed_count(scoped)
        _print(result, stored)


def _print(result: Result, stored: dict[str, int]) -> None:
    print(
        f"    {result.listeners} listener process(es): {result.rate:6,.0f} msg/s   ACK latency "
        f"p50 {result.percentile(50):6.1f} ms  p95 {result.percentile(95):6.1f} ms  "
        f"p99 {result.percentile(99):6.1f} ms   not AA: {result.not_accepted}   "
        f"store: {stored}"
    )


if __name__ == "__main__":
    main()

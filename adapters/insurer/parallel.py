"""Worker processes for large imports on PostgreSQL: rows split by KVNR, results merged.

The import is CPU-bound in Python (validation, search-index extraction, serialisation: ~2 ms
of CPU per row), so one process cannot use the second core while PostgreSQL waits on it.
Workers are forked after the file was read, checked and the shared resources were written
(``Writer.write_shared``): they inherit the parsed rows, the shared decisions and the service
(registry, hooks, clock) without pickling, open their own connections, and send back per row
only outcome and issues. All rows of one KVNR go to one worker, in file order, so a patient's
Patient and Coverage are never written by two transactions at once.

A worker that dies leaves rows without a result; the caller writes those itself, so no row is
ever dropped (docs/insurer-adapter.md, "Worker processes").
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import zlib
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from adapters.insurer.referral import Referral
from adapters.insurer.report import Outcome, RowIssue
from adapters.insurer.writer import Writer

log = logging.getLogger(__name__)

#: Per row: record number, outcome, issues.
RowOutcome = tuple[int, Outcome, list[RowIssue]]
#: Called in the parent for each chunk a worker finished: rows, created, updated.
Receive = Callable[[list[RowOutcome], int, int], None]

#: Below this many rows per worker, forking and the extra connections cost more than they save.
MIN_ROWS_PER_WORKER = 1000
#: A worker that reports no chunk for this long is taken for stuck: it is stopped and the
#: main process writes its remaining rows (a 500-row chunk takes seconds).
STALL_SECONDS = 600.0
#: More workers than this did not pay on the 2-core machine (PostgreSQL needs CPU too).
MAX_DEFAULT_WORKERS = 4


def available() -> bool:
    """Forking is how workers inherit the import's state; without it imports stay serial."""
    return "fork" in multiprocessing.get_all_start_methods()


def default_workers() -> int:
    """One worker per core, at most :data:`MAX_DEFAULT_WORKERS`."""
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def partition(rows: list[Referral], workers: int) -> list[list[Referral]]:
    """Rows split by a stable hash of the KVNR (file order kept); empty parts dropped."""
    parts: list[list[Referral]] = [[] for _ in range(workers)]
    for r in rows:
        parts[zlib.crc32(r.kvnr.encode()) % workers].append(r)
    return [p for p in parts if p]


def write(
    writer: Writer, rows: list[Referral], workers: int, batch_size: int, receive: Receive
) -> list[Referral]:
    """Write ``rows`` in up to ``workers`` forked processes; ``receive`` gets each chunk's
    results as they arrive. Returns the rows no worker reported (a worker died), in order;
    the worker's failures and phase timings are merged into ``writer``."""
    ctx = multiprocessing.get_context("fork")
    readers: dict[Connection, Any] = {}
    for index, part in enumerate(partition(rows, workers)):
        reader, sender = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_work, args=(writer, part, batch_size, sender, index == 0), daemon=True
        )
        process.start()
        sender.close()
        readers[reader] = process
    finished: set[int] = set()
    while readers:
        ready_now = wait(list(readers), timeout=STALL_SECONDS)
        if not ready_now:  # no worker reported for STALL_SECONDS: stop them, write here
            for process in readers.values():
                log.warning("insurer import worker silent for %s s; stopped", STALL_SECONDS)
                process.kill()
            writer.failures.append(
                f"worker processes sent nothing for {STALL_SECONDS} s and were stopped; "
                "the main process wrote their remaining rows"
            )
        for ready in ready_now or list(readers):
            assert isinstance(ready, Connection)
            try:
                message = ready.recv()
            except EOFError:
                process = readers.pop(ready)
                ready.close()
                process.join()
                if process.exitcode:
                    log.warning("insurer import worker exited with code %s", process.exitcode)
                    writer.failures.append(
                        f"a worker process ended with exit code {process.exitcode}; "
                        "the main process wrote its remaining rows"
                    )
                continue
            if message[0] == "chunk":
                _, results, created, updated = message
                finished.update(row for row, _, _ in results)
                receive(results, created, updated)
            else:
                _, failures, timings = message
                writer.failures += failures
                for phase, seconds in timings.items():
                    writer.timings[phase] = writer.timings.get(phase, 0.0) + seconds
    return [r for r in rows if r.row not in finished]


def _own_output() -> None:
    """New stream objects on the same descriptors, for this process and its log handlers.

    A fork copies locks that the parent's other threads held at that moment (a progress bar
    redrawing on stderr, say); a worker writing through those objects would wait forever."""
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setStream(sys.stderr)


def _work(
    writer: Writer, rows: list[Referral], batch_size: int, out: Connection, analyze: bool
) -> None:
    """A worker: own connections (the parent's stay the parent's), then chunk by chunk.
    Only the first refreshes statistics: the parts grow alike, one ANALYZE serves all."""
    _own_output()
    writer.service.db.engine.dispose(close=False)
    writer.failures = []
    writer.timings = {}
    if not analyze:
        writer.keep_statistics = False
    for start in range(0, len(rows), batch_size):
        chunk = writer.write(rows[start : start + batch_size])
        results = [(res.referral.row, res.outcome, res.issues) for res in chunk.rows]
        out.send(("chunk", results, chunk.created, chunk.updated))
    out.send(("done", writer.failures, writer.timings))
    out.close()

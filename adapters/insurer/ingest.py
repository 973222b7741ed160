"""The one way an insurer export gets in: the command line and the HTTP endpoint both call
:func:`ingest`, so both import, reject and report alike."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from adapters.insurer import layout as layouts
from adapters.insurer import parallel, reader, referral
from adapters.insurer.layout import Layout, LayoutError, Target
from adapters.insurer.reader import Record, SourceError
from adapters.insurer.referral import Referral
from adapters.insurer.report import Outcome, Report, RowIssue
from adapters.insurer.shared import decide
from adapters.insurer.writer import Writer
from fhir_server.service.resources import ResourceService

#: Referrals per unit of work; 1 gives one database transaction per referral.
DEFAULT_BATCH = 500

Progress = Callable[[int, int], None]

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_BATCH", "IngestError", "Report", "ingest"]


class IngestError(Exception):
    """The file as a whole was refused (unknown or broken layout, unreadable file)."""


def ingest(
    service: ResourceService,
    data: bytes,
    layout: str,
    *,
    file_format: str | None = None,
    encoding: str | None = None,
    mapping_dir: Path | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
    only_ik: str | None = None,
    workers: int | None = None,
) -> Report:
    """Import every good row of ``data`` and report every bad one; never stops at a bad row.

    ``layout`` names a file in the mappings directory (or is a path to one); ``file_format``
    (csv, json, jsonl) and ``encoding`` override detection. ``progress(done, total)`` is called
    as rows are finished. ``only_ik``: an insurer client imports its own members only; rows of
    another insurer IK are row errors (docs/access.md). ``workers``: processes that write
    (rows split by KVNR); None chooses by store and size, SQLite always uses one. Raises
    :class:`IngestError` when nothing can be read at all.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    started = time.perf_counter()
    try:
        spec = layouts.load(layout, mapping_dir)
        source = reader.read(data, spec, file_format, encoding)
    except (LayoutError, SourceError) as exc:
        raise IngestError(str(exc)) from exc
    report = Report(spec.layout, source.format, source.encoding, source.delimiter)
    report.rows = len(source.records)
    report.warnings += [RowIssue(0, None, "", "-", "", w) for w in source.warnings]
    total = report.rows
    now = _lap(report, "read", started)

    good = _check(source.records, spec, report, only_ik)
    done = total - len(good)
    if progress is not None:
        progress(done, total)
    shared = decide(good, spec)
    report.warnings += shared.warnings
    now = _lap(report, "check", now)

    writer = Writer(service, spec, shared)
    count = _workers(service, workers, len(good))
    report.workers = count
    # Parsed rows live until the end: keep the collector from rescanning them (gc.freeze).
    gc.freeze()
    try:
        if count > 1:  # rows already imported as they are need no worker
            same, good = writer.split_unchanged(good)
            for result in same:
                report.count(result.outcome)
            done += len(same)
            if progress is not None:
                progress(done, total)
            now = _lap(report, "unchanged", now)
            count = _workers(service, workers, len(good))
            report.workers = count
        if count > 1:
            created, updated = writer.write_shared(good)
            report.resources_created += created
            report.resources_updated += updated
            now = _lap(report, "shared", now)
            tally = _Tally(report, done, total, progress)
            good = parallel.write(writer, good, count, batch_size, tally.receive)
            done = tally.done
            if good:
                log.warning("%d rows had no result from a worker; writing them here", len(good))
        _write(writer, good, batch_size, report, done, total, progress)
    finally:
        gc.unfreeze()
    report.warnings += [RowIssue(0, None, "", "-", "", f) for f in writer.failures]
    for phase, seconds in writer.timings.items():
        report.timings[phase] = seconds
    _lap(report, "total", started)
    report.errors.sort(key=lambda i: i.row)
    return report


def _workers(service: ResourceService, requested: int | None, rows: int) -> int:
    """Worker processes for this import: 1 on SQLite (one writer at a time: parallel units
    would only queue for its lock), without ``fork``, or for small files; else as requested,
    or one per core once each worker gets :data:`parallel.MIN_ROWS_PER_WORKER` rows."""
    db: Any = getattr(service, "db", None)
    if db is None or db.is_sqlite or not parallel.available() or rows < 2:
        return 1
    if requested is not None:
        return max(1, min(requested, rows))
    if _books(service):
        return 1
    return max(1, min(parallel.default_workers(), rows // parallel.MIN_ROWS_PER_WORKER))


def _books(service: ResourceService) -> bool:
    """Whether writing a referral runs pathway rules (booking). Workers' units then wait for
    each other's Slot locks (all want the earliest free Slot), for a whole unit at a time:
    measured no faster than one process, so by default an import with rules stays serial."""
    hooks: Any = getattr(service, "hooks", None)
    return bool(hooks is not None and hooks.after.get("ServiceRequest"))


class _Tally:
    """Adds the chunks workers report to the report, as they arrive."""

    def __init__(self, report: Report, done: int, total: int, progress: Progress | None) -> None:
        self.report = report
        self.done = done
        self.total = total
        self.progress = progress

    def receive(
        self, rows: Iterable[tuple[int, Outcome, list[RowIssue]]], created: int, updated: int
    ) -> None:
        self.report.resources_created += created
        self.report.resources_updated += updated
        for _, outcome, issues in rows:
            self.report.count(outcome)
            self.report.errors += issues
            self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)


def _write(
    writer: Writer,
    good: list[Referral],
    batch_size: int,
    report: Report,
    done: int,
    total: int,
    progress: Progress | None,
) -> None:
    for start in range(0, len(good), batch_size):
        chunk = writer.write(good[start : start + batch_size])
        report.resources_created += chunk.created
        report.resources_updated += chunk.updated
        for result in chunk.rows:
            report.count(result.outcome)
            report.errors += result.issues
        done += len(chunk.rows)
        if progress is not None:
            progress(done, total)


def _check(
    records: list[Record], spec: Layout, report: Report, only_ik: str | None = None
) -> list[Referral]:
    """Referrals that pass every field check and are the first with their id in the file."""
    first: dict[tuple[str, str], int] = {}
    good = []
    id_column = spec.column_of(Target.REFERRAL_ID) or Target.REFERRAL_ID.value
    ik_column = spec.column_of(Target.INSURER_IK) or Target.INSURER_IK.value
    for record in records:
        parsed = referral.parse(record, spec)
        issues = parsed if isinstance(parsed, list) else []
        key = _raw_key(record, spec)
        if only_ik is not None and key[0] != only_ik:
            reason = f"this client imports referrals of insurer IK {only_ik} only"
            issues = [*issues, RowIssue(record.row, record.line, key[1], ik_column, key[0], reason)]
        if key[1]:
            if key in first:
                issues = [
                    *issues,
                    RowIssue(
                        record.row,
                        record.line,
                        key[1],
                        id_column,
                        key[1],
                        f"duplicate referral id in this file (first in row {first[key]})",
                    ),
                ]
            else:
                first[key] = record.row
        if issues:
            report.count("rejected")
            report.errors += issues
        else:
            assert isinstance(parsed, Referral)
            good.append(parsed)
    return good


def _raw_key(record: Record, spec: Layout) -> tuple[str, str]:
    """Insurer IK and referral id as written, so duplicates are found even in bad rows."""
    column = spec.column_of(Target.INSURER_IK)
    ik = record.values.get(column, "") if column else spec.constants.get(Target.INSURER_IK, "")
    return ik.strip(), referral.referral_id_of(record, spec)


def _lap(report: Report, phase: str, since: float) -> float:
    now = time.perf_counter()
    report.timings[phase] = report.timings.get(phase, 0.0) + now - since
    return now

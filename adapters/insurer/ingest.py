"""The one way an insurer export gets in: the command line and the HTTP endpoint both call
:func:`ingest`, so both import, reject and report alike."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path

from adapters.insurer import layout as layouts
from adapters.insurer import reader, referral
from adapters.insurer.layout import Layout, LayoutError, Target
from adapters.insurer.reader import Record, SourceError
from adapters.insurer.referral import Referral
from adapters.insurer.report import Report, RowIssue
from adapters.insurer.shared import decide
from adapters.insurer.writer import Writer
from fhir_server.service.resources import ResourceService

#: Referrals per unit of work; 1 gives one database transaction per referral.
DEFAULT_BATCH = 500

Progress = Callable[[int, int], None]

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
) -> Report:
    """Import every good row of ``data`` and report every bad one; never stops at a bad row.

    ``layout`` names a file in the mappings directory (or is a path to one); ``file_format``
    (csv, json, jsonl) and ``encoding`` override detection. ``progress(done, total)`` is called
    as rows are finished. ``only_ik``: an insurer client imports its own members only; rows of
    another insurer IK are row errors (docs/access.md). Raises :class:`IngestError` when
    nothing can be read at all.
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
    # Parsed rows live until the end: keep the collector from rescanning them (gc.freeze).
    gc.freeze()
    try:
        _write(writer, good, batch_size, report, done, total, progress)
    finally:
        gc.unfreeze()
    report.warnings += [RowIssue(0, None, "", "-", "", f) for f in writer.failures]
    for phase, seconds in writer.timings.items():
        report.timings[phase] = seconds
    _lap(report, "total", started)
    report.errors.sort(key=lambda i: i.row)
    return report


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

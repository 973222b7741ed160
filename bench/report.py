"""The printed result: one table of rates, references, ratios and targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.load import LoadResult


@dataclass(frozen=True)
class Line:
    """One row: the server's rate beside the reference it is judged against."""

    measurement: str
    ivz_rate: float
    unit: str
    reference: str
    reference_rate: float
    target: float | None = None
    #: Absolute floor for the server's own rate, in ``unit``.
    floor: float | None = None
    ivz: LoadResult | None = None
    errors: str = ""

    @property
    def ratio(self) -> float:
        return self.ivz_rate / self.reference_rate if self.reference_rate else 0.0

    @property
    def verdict(self) -> str:
        if self.target is None and self.floor is None:
            return ""
        ok = (self.target is None or self.ratio >= self.target) and (
            self.floor is None or self.ivz_rate >= self.floor
        )
        return "met" if ok else "MISSED"


def errors_of(ivz: LoadResult, reference: LoadResult | None = None) -> str:
    """Failed requests (non-2xx + socket errors) as ``ivz / reference``."""
    mine = ivz.non_2xx + ivz.errors
    if reference is None:
        return str(mine)
    return f"{mine} / {reference.non_2xx + reference.errors}"


def _target(line: Line) -> str:
    parts = []
    if line.floor is not None:
        parts.append(f">= {line.floor:,.0f} {line.unit}")
    if line.target is not None:
        parts.append(f">= {line.target:.0%}")
    return ", ".join(parts) or "-"


def _latency(result: LoadResult | None) -> str:
    return f"{result.p50_ms:.1f} / {result.p99_ms:.1f}" if result else ""


def _cells(line: Line) -> list[str]:
    return [
        line.measurement,
        f"{line.ivz_rate:,.0f} {line.unit}" if line.ivz_rate else "",
        _latency(line.ivz),
        f"{line.reference}: {line.reference_rate:,.0f} {line.unit}",
        f"{line.ratio:.1%}",
        _target(line),
        line.verdict,
        line.errors,
    ]


HEADERS = [
    "Measurement",
    "ivz-bridge",
    "p50/p99 ms",
    "Reference (same run)",
    "Ratio",
    "Target",
    "Result",
    "Failed ivz/ref",
]


def table(lines: Sequence[Line]) -> str:
    """A Markdown table, readable in a terminal and pasteable into docs/benchmarks.md."""
    rows = [HEADERS, *(_cells(line) for line in lines)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    out = [_row(rows[0], widths), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [_row(row, widths) for row in rows[1:]]
    return "\n".join(out)


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

"""What an import did: counts, and every rejected row with field, value and reason.

The same report answers the HTTP endpoint (JSON) and the command line (JSON and CSV files), so
an insurer gets one format whichever way the file came in.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Outcome = Literal["imported", "updated", "unchanged", "rejected"]

#: Columns of the CSV error report, in order.
CSV_COLUMNS = ("row", "line", "referral_id", "field", "value", "reason")


@dataclass(frozen=True, slots=True)
class RowIssue:
    """One problem with one row; ``field`` is the source column (or ``-`` for the record)."""

    row: int
    line: int | None
    referral_id: str
    field: str
    value: str
    reason: str


@dataclass
class Report:
    layout: str
    format: str = ""
    encoding: str = ""
    delimiter: str | None = None
    rows: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    resources_created: int = 0
    resources_updated: int = 0
    #: Processes that wrote the rows (``ingest(workers=…)``).
    workers: int = 1
    errors: list[RowIssue] = field(default_factory=list)
    #: Not errors, but not silent either: ignored columns, conflicting shared data, …
    warnings: list[RowIssue] = field(default_factory=list)
    #: Seconds spent per phase (read, check, plan, validate, write), for tuning.
    timings: dict[str, float] = field(default_factory=dict)

    def count(self, outcome: Outcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return data

    def errors_csv(self) -> str:
        """The rejected rows as CSV (``;``-separated, as German spreadsheets expect)."""
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for issue in self.errors:
            writer.writerow(["" if v is None else v for v in asdict(issue).values()])
        return out.getvalue()

    def summary(self) -> str:
        return (
            f"{self.rows} rows: {self.imported} imported, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.rejected} rejected"
        )

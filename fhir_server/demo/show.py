"""The program report as a terminal table (the same figures as ``GET /report/program.json``)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from fhir_server.demo.run import DemoResult
from fhir_server.pathway.report import Report

#: (report key, column title): short titles, so the table fits an 80-column terminal.
_COLUMNS = (
    ("referrals", "refs"),
    ("participants", "seen"),
    ("confirmed", "conf"),
    ("not_confirmed", "not"),
    ("confirmed_percent", "conf%"),
    ("age", "age"),
    ("female_percent", "fem%"),
    ("booked_within_48h_percent", "≤48h%"),
)


def _cell(figures: dict[str, Any], key: str) -> str:
    if key == "age":
        mean, sd = figures.get("age_mean"), figures.get("age_sd")
        return "-" if mean is None else f"{mean} ± {sd if sd is not None else '-'}"
    value = figures.get(key)
    return "-" if value is None else str(value)


def report_table(report: Report) -> Table:
    """One row for the program, then one per team."""
    data = report.as_json()
    table = Table(
        title="Program report, computed from the stored resources",
        caption="seen: participants (appointment fulfilled); conf/not: surgery confirmed / not "
        "recommended; age: mean ± SD at receipt; ≤48h: booked within 48 h of receipt",
        box=box.SIMPLE_HEAD,
        padding=(0, 0, 0, 1),
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("team", no_wrap=True, max_width=20, overflow="ellipsis")
    for key, title in _COLUMNS:
        table.add_column(
            title, justify="right", no_wrap=True, min_width=11 if key == "age" else len(title)
        )
    table.add_row("all teams", *(_cell(data, k) for k, _ in _COLUMNS), style="bold")
    for team in data["teams"]:
        # "Interdisziplinäre Zweitmeinung Wirbelsäule, <centre> <city>": the city says where.
        name = f"{team['team']} {str(team['name']).rsplit(' ', 1)[-1]}"
        table.add_row(name, *(_cell(team, k) for k, _ in _COLUMNS))
    return table


def summary(result: DemoResult) -> str:
    """What the run did, in one paragraph (the report's figures are in the table)."""
    see = f"\nFirst referral: {result.example} (its $pathway shows the whole case)."
    if result.skipped:
        return "The demo cohort is already in this database: nothing written, report only." + see
    t = result.tally
    parts = {**t.seconds, **result.steps}
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in parts.items())
    lines = [
        f"Insurer: {t.exports} tk exports, {t.rows} rows, {t.rejected} rejected; "
        f"{len(t.on_hold)} referrals on hold (consent refused).",
        f"Clinics (MLLP): {sum(t.acks.values())} messages, ACKs "
        + ", ".join(f"{k} {v}" for k, v in sorted(t.acks.items()))
        + f"; {t.visits} visits, {t.no_shows} no-shows re-booked.",
        f"Teams: {t.verdicts} verdicts via $verdict; {len(t.unbooked)} unbooked, "
        f"{len(t.pending)} steps still ahead of now.",
        f"Done in {result.seconds:.1f} s ({steps}).",
    ]
    return "\n".join(lines) + see


def print_result(result: DemoResult, console: Console | None = None) -> None:
    console = console or Console()
    console.print(summary(result))
    console.print(report_table(result.report))

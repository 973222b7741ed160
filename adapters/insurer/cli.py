"""``ivz ingest insurer FILE --layout tk``: import an export with a progress bar, write the
JSON and CSV reports, print the summary. Exit code 0: all rows in; 1: some rows rejected;
2: the file was refused as a whole."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.insurer.ingest import DEFAULT_BATCH, IngestError, ingest
from adapters.insurer.report import Report

app = typer.Typer(help="Import data from outside systems.", no_args_is_help=True)

_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@app.callback()
def _group() -> None:
    """Import data from outside systems."""


@app.command("insurer")
def insurer(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The export file")],
    layout: Annotated[str, typer.Option("--layout", "-l", help="Layout name, e.g. tk or aok")],
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="SQLAlchemy URL (default: IVZ_DATABASE_URL)"),
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv, json or jsonl (default: detect)")
    ] = None,
    encoding: Annotated[
        str | None, typer.Option("--encoding", help="e.g. cp1252 (default: detect)")
    ] = None,
    report_path: Annotated[
        Path | None, typer.Option("--report", help="JSON report (default: FILE.report.json)")
    ] = None,
    errors_path: Annotated[
        Path | None,
        typer.Option("--errors-csv", help="CSV of rejected rows (default: FILE.errors.csv)"),
    ] = None,
    mappings: Annotated[
        Path | None, typer.Option("--mappings", help="Folder of layout files")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Referrals per database transaction")
    ] = DEFAULT_BATCH,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Writer processes on PostgreSQL (default: one per core for large files, "
            "one when pathway rules book referrals)",
        ),
    ] = None,
) -> None:
    """Import an insurer's referral export (CSV, JSON array or JSON Lines)."""
    from fhir_server.service.resources import ResourceService
    from fhir_server.settings import get_settings
    from fhir_server.storage import migrate
    from fhir_server.storage.database import Database

    console = Console(stderr=True)
    db = Database(database_url or get_settings().database_url)
    try:
        migrate.upgrade(db)
        service = ResourceService(db)
        data = file.read_bytes()
        started = time.perf_counter()
        with Progress(  # no stdout/stderr proxies: forked workers must not inherit their locks
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        ) as bar:
            task = bar.add_task(f"importing {file.name}", total=None)

            def progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            try:
                report = ingest(
                    service,
                    data,
                    layout,
                    file_format=file_format or _EXTENSIONS.get(file.suffix.lower()),
                    encoding=encoding,
                    mapping_dir=mappings,
                    batch_size=batch_size,
                    progress=progress,
                    workers=workers,
                )
            except IngestError as exc:
                console.print(f"[red]refused:[/red] {exc}")
                raise typer.Exit(2) from exc
        elapsed = time.perf_counter() - started
    finally:
        db.dispose()
    report_path = report_path or file.with_name(file.name + ".report.json")
    errors_path = errors_path or file.with_name(file.name + ".errors.csv")
    import orjson

    report_path.write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    errors_path.write_text(report.errors_csv(), encoding="utf-8")
    Console().print(_summary(report, elapsed))
    console.print(f"report: {report_path}  errors: {errors_path}")
    if report.rejected:
        raise typer.Exit(1)


def _summary(report: Report, elapsed: float) -> Table:
    table = Table(title=f"{report.layout} import ({report.format}, {report.encoding})")
    for column in ("rows", "imported", "updated", "unchanged", "rejected", "rows/s"):
        table.add_column(column, justify="right")
    rate = report.rows / elapsed if elapsed > 0 else 0.0
    table.add_row(
        str(report.rows),
        str(report.imported),
        str(report.updated),
        str(report.unchanged),
        f"[red]{report.rejected}[/red]" if report.rejected else "0",
        f"{rate:,.0f}",
    )
    return table

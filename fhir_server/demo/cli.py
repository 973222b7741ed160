"""``ivz demo``: registered by ``fhir_server/cli.py``; heavy imports wait for the call."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def demo(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL (default: IVZ_DATABASE_URL or sqlite:///./ivz.db)",
        ),
    ] = None,
    referrals: Annotated[int, typer.Option(min=1, help="Referrals in the cohort")] = 220,
    seed: Annotated[int, typer.Option(help="Random seed of the cohort")] = 311,  # DEFAULT_SEED
    weeks: Annotated[
        int, typer.Option(min=2, help="Weeks simulated up to now (receipts stop 6 days before)")
    ] = 8,
    out: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="Keep the insurer export files here"),
    ] = None,
) -> None:
    """Seed the teams and run a synthetic cohort through insurer export, HL7 v2 (MLLP) and
    $verdict, then print the program report; on a database that has it, only the report."""
    from rich.console import Console

    from fhir_server.demo.run import DemoError, DemoOptions, run_demo
    from fhir_server.demo.show import print_result
    from fhir_server.logging import configure as configure_logging
    from fhir_server.settings import get_settings
    from fhir_server.storage import migrate
    from fhir_server.storage.database import Database

    if database_url:
        os.environ["IVZ_DATABASE_URL"] = database_url
        get_settings.cache_clear()
    settings = get_settings()
    configure_logging("WARNING", settings.log_json)  # the booking log would drown the report
    console = Console()
    db = Database(settings.database_url)
    try:
        migrate.upgrade(db)
        with console.status("Running the demo cohort through the pathway …"):
            result = run_demo(db, DemoOptions(referrals, seed, weeks, out))
    except DemoError as exc:
        console.print(f"[red]demo stopped:[/red] {exc}")
        raise typer.Exit(1) from exc
    finally:
        db.dispose()
    print_result(result, console)

"""``ivz seed teams``, and the pathway rules for every service an ``ivz`` command builds."""

from __future__ import annotations

import os
from datetime import date
from typing import Annotated

import typer

from fhir_server.fhir.outcomes import FhirError

seed_app = typer.Typer(help="Seed reference data.", no_args_is_help=True)


def use_pathway_rules(ctx: typer.Context) -> None:
    """Services built by ``ivz`` commands (HL7 listener, insurer import) book, attach and
    queue notifications too, for as long as the command runs."""
    from adapters.hl7v2 import outbound as outbound_rules
    from fhir_server.pathway.rules import pathway_hooks
    from fhir_server.service import hooks
    from fhir_server.subscriptions import rules as subscription_rules

    rules = pathway_hooks()
    outbound_rules.register(rules)  # a verdict arriving over v2 goes out to other clinics
    subscription_rules.register(rules)  # their writes notify subscribers too (via the outbox)
    hooks.set_default(rules)
    ctx.call_on_close(lambda: hooks.set_default(None))


@seed_app.command("teams")
def seed_teams_command(
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="SQLAlchemy URL (default: IVZ_DATABASE_URL)"),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="First day of Slots, YYYY-MM-DD (default today)")
    ] = None,
    days: Annotated[int, typer.Option("--days", help="Calendar days with Slots")] = 14,
    slots_per_day: Annotated[
        int, typer.Option("--slots-per-day", help="90-minute Slots per workday and team")
    ] = 4,
) -> None:
    """Create the 30 teams (idempotent) and add their missing Slots on workdays."""
    from fhir_server.pathway.teams import seed_teams
    from fhir_server.service.resources import ResourceService
    from fhir_server.settings import get_settings
    from fhir_server.storage import migrate
    from fhir_server.storage.database import Database

    if database_url:
        os.environ["IVZ_DATABASE_URL"] = database_url
        get_settings.cache_clear()
    try:
        first = date.fromisoformat(start) if start else date.today()
    except ValueError as exc:
        raise typer.BadParameter(f"--start must be YYYY-MM-DD, not {start!r}") from exc
    db = Database(get_settings().database_url)
    try:
        migrate.upgrade(db)
        result = seed_teams(ResourceService(db), first, days, slots_per_day)
    except FhirError as exc:
        raise typer.BadParameter(exc.diagnostics) from exc
    finally:
        db.dispose()
    typer.echo(
        f"{result.teams} teams ({result.team_resources_written} team resources written), "
        f"{result.slots_created} slots created from {first} for {days} days"
    )

"""The ``ivz`` command line."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from adapters.hl7v2.cli import app as hl7_app
from adapters.hl7v2.cli import mllp as hl7_mllp
from adapters.insurer.cli import app as ingest_app
from fhir_server.auth import cli as auth_cli
from fhir_server.demo.cli import demo as demo_command
from fhir_server.logging import configure as configure_logging
from fhir_server.pathway.cli import seed_app, use_pathway_rules
from fhir_server.settings import get_settings

app = typer.Typer(
    help="ivz-bridge: FHIR R4 server for spine-care second-opinion programs.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(hl7_app, name="hl7")
app.add_typer(ingest_app, name="ingest")
app.command("mllp")(hl7_mllp)
app.command("demo")(demo_command)  # ivz demo: fhir_server/demo/
app.add_typer(seed_app, name="seed")  # ivz seed teams
app.add_typer(auth_cli.clients_app, name="clients")  # ivz clients add|list|remove
app.command("token")(auth_cli.token)  # ivz token --client ID
app.callback()(use_pathway_rules)  # services built by ivz commands run the pathway rules

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="SQLAlchemy URL (default: IVZ_DATABASE_URL or sqlite:///./ivz.db)"
    ),
]


def _use_database(url: str | None) -> None:
    if url:
        os.environ["IVZ_DATABASE_URL"] = url
        get_settings.cache_clear()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port")] = 8080,
    database_url: DatabaseUrl = None,
    workers: Annotated[
        int, typer.Option(envvar="IVZ_WORKERS", help="uvicorn worker processes (IVZ_WORKERS)")
    ] = 1,
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo referral on start")] = False,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (also IVZ_ACCESS_LOG)")
    ] = False,
    mllp_port: Annotated[
        int | None, typer.Option("--mllp-port", help="Also accept HL7 v2 over MLLP on this port")
    ] = None,
) -> None:
    """Serve the FHIR API at http://HOST:PORT/fhir (upgrades the database schema first)."""
    import uvicorn

    _use_database(database_url)
    if mllp_port is not None:
        os.environ["IVZ_MLLP_PORT"] = str(mllp_port)
        os.environ.setdefault("IVZ_MLLP_HOST", host)
        get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    _prepare_database(settings.database_url, demo or settings.demo_data)
    # Done once here, not in every worker's start-up.
    os.environ["IVZ_DEMO_DATA"] = "false"
    uvicorn.run(
        "fhir_server.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=access_log or settings.access_log,
        proxy_headers=True,
    )


def _prepare_database(url: str, demo: bool) -> None:
    """Migrate (and load the demo referral) before any worker starts."""
    from fhir_server.storage import migrate
    from fhir_server.storage.database import Database

    db = Database(url)
    try:
        migrate.upgrade(db)
        if demo:
            from fhir_server.demo import load_demo_data
            from fhir_server.service.resources import ResourceService

            load_demo_data(ResourceService(db))
    finally:
        db.dispose()


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Apply all schema migrations."""
    from fhir_server.storage import migrate
    from fhir_server.storage.database import Database

    _use_database(database_url)
    db = Database(get_settings().database_url)
    migrate.upgrade(db)
    typer.echo(f"database at revision {migrate.current(db)} (head {migrate.head()})")
    db.dispose()


@db_app.command("current")
def db_current(database_url: DatabaseUrl = None) -> None:
    """Show the schema revision of the database."""
    from fhir_server.storage import migrate
    from fhir_server.storage.database import Database

    _use_database(database_url)
    db = Database(get_settings().database_url)
    typer.echo(migrate.current(db) or "empty (no migrations applied)")
    db.dispose()


if __name__ == "__main__":  # pragma: no cover
    app()

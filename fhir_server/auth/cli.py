"""``ivz clients add|list|remove`` and ``ivz token --client ID`` (a token for local use)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fhir_server.auth import scopes as scope_rules
from fhir_server.auth.principal import Principal
from fhir_server.auth.tokens import load_key, mint
from fhir_server.auth.urls import TOKEN_PATH, origin_of
from fhir_server.settings import get_settings
from fhir_server.storage import migrate
from fhir_server.storage.clients import (
    CLIENT_KINDS,
    Client,
    add_client,
    get_client,
    list_clients,
    remove_client,
)
from fhir_server.storage.database import Database

clients_app = typer.Typer(help="Registered SMART Backend Services clients.", no_args_is_help=True)

DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: IVZ_DATABASE_URL)")
]


def _database(url: str | None) -> Database:
    db = Database(url or get_settings().database_url)
    migrate.upgrade(db)
    return db


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


@clients_app.command("add")
def add(
    client_id: Annotated[str, typer.Option("--id", help="client_id (the assertion's iss/sub)")],
    kind: Annotated[str, typer.Option("--kind", help="admin, insurer, team or ehr")],
    scope: Annotated[str, typer.Option("--scope", help='Allowed scopes, e.g. "system/*.rs"')],
    jwks: Annotated[Path | None, typer.Option("--jwks", help="JWKS file (public keys)")] = None,
    jwks_url: Annotated[str | None, typer.Option("--jwks-url", help="JWKS URL")] = None,
    ik: Annotated[str | None, typer.Option("--ik", help="Insurer IK number")] = None,
    team: Annotated[str | None, typer.Option("--team", help="Team id, e.g. team-01")] = None,
    org: Annotated[str | None, typer.Option("--org", help="Hospital Organization id")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Register a client with its kind, allowed scopes and public keys."""
    if kind not in CLIENT_KINDS:
        raise _fail(f"--kind must be one of {', '.join(CLIENT_KINDS)}")
    allowed = scope.split()
    bad = [s for s in allowed if not scope_rules.is_valid(s)]
    if not allowed or bad:
        raise _fail(f"not a system scope: {' '.join(bad) or '(none)'}")
    if (jwks is None) == (jwks_url is None):
        raise _fail("give exactly one of --jwks FILE and --jwks-url URL")
    key_set = None
    if jwks is not None:
        try:
            key_set = json.loads(jwks.read_text())
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read JWKS from {jwks}: {exc}") from exc
        if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
            raise _fail(f"{jwks} is not a JWKS (an object with 'keys')")
    attributes = {k: v for k, v in (("ik", ik), ("team", team), ("org", org)) if v}
    client = Client(client_id, kind, tuple(allowed), key_set, jwks_url, attributes)
    db = _database(database_url)
    try:
        with db.write() as conn:
            added = add_client(conn, client)
    finally:
        db.dispose()
    if not added:
        raise _fail(f"client {client_id} exists already")
    typer.echo(f"added client {client_id} ({kind})")


@clients_app.command("list")
def list_(database_url: DatabaseUrl = None) -> None:
    """Show the registered clients, one a line."""
    db = _database(database_url)
    try:
        with db.read() as conn:
            clients = list_clients(conn)
    finally:
        db.dispose()
    for c in clients:
        keys = c.jwks_url or "inline JWKS"
        attrs = " ".join(f"{k}={v}" for k, v in sorted(c.attributes.items()))
        typer.echo(f"{c.client_id}\t{c.kind}\t{' '.join(c.scopes)}\t{keys}\t{attrs}".rstrip())


@clients_app.command("remove")
def remove(
    client_id: Annotated[str, typer.Argument(help="client_id")], database_url: DatabaseUrl = None
) -> None:
    """Forget a client (its tokens stay valid until they expire)."""
    db = _database(database_url)
    try:
        with db.write() as conn:
            removed = remove_client(conn, client_id)
    finally:
        db.dispose()
    if not removed:
        raise _fail(f"no client {client_id}")
    typer.echo(f"removed client {client_id}")


def token(
    client: Annotated[str, typer.Option("--client", help="client_id of a registered client")],
    scope: Annotated[
        str | None, typer.Option("--scope", help="Requested scopes (default: all allowed)")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="FHIR base URL (default: IVZ_PUBLIC_BASE_URL)"),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Mint an access token for a registered client locally (development; no assertion)."""
    settings = get_settings()
    base = (base_url or settings.public_base_url or "http://127.0.0.1:8080/fhir").rstrip("/")
    db = _database(database_url)
    try:
        with db.read() as conn:
            registered = get_client(conn, client)
        if registered is None:
            raise _fail(f"no client {client}")
        granted = scope_rules.grant(
            (scope or " ".join(registered.scopes)).split(), registered.scopes
        )
        if not granted:
            raise _fail("none of the requested scopes is allowed for this client")
        key = load_key(db)
    finally:
        db.dispose()
    principal = Principal(
        registered.client_id, registered.kind, tuple(granted), registered.attributes
    )
    issuer = settings.auth_issuer or origin_of(base) + TOKEN_PATH
    audience = settings.auth_audience or base
    typer.echo(mint(key, principal, issuer, audience, settings.auth_token_lifetime))

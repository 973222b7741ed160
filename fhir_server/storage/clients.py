"""SQL of authorization: registered clients, used assertion ids (jti) and the signing key.

A jti is inserted with ``ON CONFLICT DO NOTHING``: of two requests replaying the same client
assertion at once exactly one gets the row, on PostgreSQL and SQLite alike. The signing key
is inserted the same way, so workers starting together agree on one key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, DateTime, String, Table, Text, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from fhir_server.storage.schema import metadata

CLIENT_KINDS = ("admin", "insurer", "team", "ehr")

auth_clients = Table(
    "auth_clients",
    metadata,
    Column("client_id", String(255), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("jwks", Text),
    Column("jwks_url", Text),
    Column("attributes", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)
auth_jti = Table(
    "auth_jti",
    metadata,
    Column("client_id", String(255), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
auth_keys = Table(
    "auth_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("algorithm", String(16), nullable=False),
    Column("private_pem", Text, nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Client:
    """A registered machine client: who it is, what it may ask for, how it proves itself."""

    client_id: str
    kind: str
    scopes: tuple[str, ...]
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private_pem: str


def _insert(conn: Connection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def add_client(conn: Connection, client: Client) -> bool:
    """Register ``client``; False when its id is taken already."""
    stmt = (
        _insert(conn, auth_clients)
        .values(
            client_id=client.client_id,
            kind=client.kind,
            scopes=" ".join(client.scopes),
            jwks=json.dumps(client.jwks) if client.jwks is not None else None,
            jwks_url=client.jwks_url,
            attributes=json.dumps(client.attributes, sort_keys=True),
            created=client.created or datetime.now(UTC),
        )
        .on_conflict_do_nothing(index_elements=["client_id"])
        .returning(auth_clients.c.client_id)
    )
    return conn.execute(stmt).first() is not None


def get_client(conn: Connection, client_id: str) -> Client | None:
    row = conn.execute(select(auth_clients).where(auth_clients.c.client_id == client_id)).first()
    return None if row is None else _client(row._mapping)


def list_clients(conn: Connection) -> list[Client]:
    rows = conn.execute(select(auth_clients).order_by(auth_clients.c.client_id))
    return [_client(r._mapping) for r in rows]


def remove_client(conn: Connection, client_id: str) -> bool:
    """Forget a client; its access tokens still live until they expire (minutes)."""
    result = conn.execute(
        delete(auth_clients)
        .where(auth_clients.c.client_id == client_id)
        .returning(auth_clients.c.client_id)
    )
    conn.execute(delete(auth_jti).where(auth_jti.c.client_id == client_id))
    return result.first() is not None


def _client(row: Any) -> Client:
    return Client(
        client_id=row["client_id"],
        kind=row["kind"],
        scopes=tuple(row["scopes"].split()),
        jwks=json.loads(row["jwks"]) if row["jwks"] else None,
        jwks_url=row["jwks_url"],
        attributes=json.loads(row["attributes"]),
        created=row["created"],
    )


def use_jti(conn: Connection, client_id: str, jti: str, expires_at: datetime) -> bool:
    """Record an assertion id; False when it was used before (a replay). Purges expired ids."""
    now = datetime.now(UTC)
    conn.execute(delete(auth_jti).where(auth_jti.c.expires_at < now))
    stmt = (
        _insert(conn, auth_jti)
        .values(client_id=client_id, jti=jti, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["client_id", "jti"])
        .returning(auth_jti.c.jti)
    )
    return conn.execute(stmt).first() is not None


def signing_key(conn: Connection, kid: str) -> SigningKey | None:
    row = conn.execute(select(auth_keys).where(auth_keys.c.kid == kid)).first()
    if row is None:
        return None
    return SigningKey(row.kid, row.algorithm, row.private_pem)


def add_signing_key(conn: Connection, key: SigningKey) -> None:
    """Store a key unless one with the same id exists (concurrent first starts)."""
    stmt = (
        _insert(conn, auth_keys)
        .values(
            kid=key.kid,
            algorithm=key.algorithm,
            private_pem=key.private_pem,
            created=datetime.now(UTC),
        )
        .on_conflict_do_nothing(index_elements=["kid"])
    )
    conn.execute(stmt)

"""A private, migrated PostgreSQL schema per benchmark run, dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import psycopg

from fhir_server.storage import migrate
from fhir_server.storage.database import Database


@contextlib.contextmanager
def private_schema(url: str, label: str) -> Iterator[str]:
    """The URL of a fresh, migrated schema (``search_path`` set); dropped whatever happens."""
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    schema = f"ivz_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    scoped = url + ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    try:
        db = Database(scoped)
        migrate.upgrade(db)
        db.dispose()
        yield scoped
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

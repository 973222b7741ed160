"""Shared fixtures: a database on each store, and a real ``ivz serve`` on each store.

Every storage and API test runs against SQLite and PostgreSQL. PostgreSQL is found through
IVZ_TEST_POSTGRES_URL; each test session gets its own schema so parallel workers never meet.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fhir_server.storage import migrate
from fhir_server.storage.database import Database

POSTGRES_URL = os.environ.get(
    "IVZ_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
STORES = ["sqlite", "postgres"]
#: The installed ``ivz`` command, as a user runs it.
_IVZ_SCRIPT = Path(sys.executable).parent / "ivz"
IVZ = [str(_IVZ_SCRIPT)] if _IVZ_SCRIPT.exists() else [sys.executable, "-m", "fhir_server.cli"]


def _postgres_answers() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    import psycopg

    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain, connect_timeout=3):
            return None
    except Exception as exc:
        return f"no PostgreSQL answers at {POSTGRES_URL}: {exc}"


def fresh_url(store: str, tmp: Path, prefix: str = "ivz_test") -> Iterator[str]:
    """An empty database on ``store``: a SQLite file, or a PostgreSQL schema dropped after."""
    if store == "sqlite":
        yield f"sqlite:///{tmp / f'{prefix}-{uuid.uuid4().hex[:8]}.db'}"
        return
    reason = _postgres_answers()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    plain = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def postgres_schema_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh schema on the test PostgreSQL, dropped at the end of the session."""
    yield from fresh_url("postgres", tmp_path_factory.mktemp("pg"))


def store_url(store: str, request: pytest.FixtureRequest, tmp_dir: Path) -> str:
    if store == "postgres":
        url: str = request.getfixturevalue("postgres_schema_url")
        return url
    return f"sqlite:///{tmp_dir / 'ivz.db'}"


@pytest.fixture(scope="session", params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(
    store: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> str:
    return store_url(store, request, tmp_path_factory.mktemp(store))


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``ivz serve`` in a subprocess: the black box that integration engineers see."""

    def __init__(self, database_url: str, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.database_url = database_url
        # IVZ_AUTH=off unless a test turns it on (tests/auth/).
        # Auth off and no notification delivery unless a test asks: the R4 example Subscription
        # posted by test_all_types points at a real host on the internet. No HL7 v2 sender
        # either (tests/adapters/hl7v2/test_outbound_*.py turn it on).
        quiet = {
            "IVZ_LOG_LEVEL": "WARNING",
            "IVZ_AUTH": "off",
            "IVZ_SUBSCRIPTION_DELIVERY": "off",
            "IVZ_HL7_OUTBOUND": "off",
        }
        self.env = {**os.environ, **quiet, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        cmd = [
            sys.executable,
            "-m",
            "fhir_server.cli",
            "serve",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
        ]
        self.proc = subprocess.Popen(
            cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"ivz serve exited: {err[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("ivz serve did not start within 60 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[LiveServer]:
    live = LiveServer(database_url).start()
    yield live
    live.stop()


@pytest.fixture()
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.base, timeout=30, headers={"Accept": "application/fhir+json"}
    ) as c:
        yield c


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared material not found at {SHARED}")
    return SHARED


@pytest.fixture()
def server_base(server: LiveServer) -> str:
    return server.base

"""A real ``ivz serve`` with fast retry settings on a fresh database per store, and a real
HTTP receiver (a threaded ``http.server``) that records what it is sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from fhir_server.storage import outbox
from fhir_server.storage.database import Database
from tests.conftest import STORES, LiveServer, fresh_url

#: Retries within a test's patience: 0.2 s, 0.4 s, then the Subscription is in error.
FAST = {
    "IVZ_SUBSCRIPTION_DELIVERY": "on",
    "IVZ_SUBSCRIPTION_POLL_SECONDS": "0.05",
    "IVZ_SUBSCRIPTION_RETRY_SECONDS": "0.2",
    "IVZ_SUBSCRIPTION_MAX_ATTEMPTS": "3",
    "IVZ_SUBSCRIPTION_TIMEOUT_SECONDS": "2",
}


@pytest.fixture(scope="session", params=STORES)
def subs_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_url(str(request.param), tmp_path_factory.mktemp("subs"), "ivz_subs")


@pytest.fixture(scope="session")
def subs_server(subs_url: str) -> Iterator[LiveServer]:
    live = LiveServer(subs_url, env=FAST).start()
    yield live
    live.stop()


@pytest.fixture()
def fhir(subs_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=subs_server.base, timeout=30, headers={"Accept": "application/fhir+json"}
    ) as c:
        yield c


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What the endpoint got; ``answers`` are the status codes to reply, then 200."""

    url: str
    got: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    def wait_for(self, count: int, timeout: float = 15) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.got) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.got)


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    state = Receiver("")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with lock:
                code = state.answers.pop(0) if state.answers else 200
                if code < 300:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    state.got.append(Received(self.path, headers, body))
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def subscription(criteria: str, endpoint: str, **channel: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "test",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": endpoint, **channel},
    }


def patient(family: str, gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family}], "gender": gender}


def created(client: httpx.Client, resource: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(f"/{resource['resourceType']}", json=resource)
    assert answer.status_code == 201, answer.text
    doc: dict[str, Any] = answer.json()
    return doc


def outbox_counts(database_url: str, subscription_id: str) -> dict[str, int]:
    """The subscription's outbox rows per state, read from the store itself. Rows are queued
    in the writing transaction, so right after a write's answer this proves what will (not)
    be sent, where waiting for silence could only suggest it."""
    db = Database(database_url)
    try:
        with db.read() as conn:
            return outbox.status(conn, subscription_id).counts
    finally:
        db.dispose()


def eventually(check: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()

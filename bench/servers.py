"""Start and stop the servers under test as child processes on 127.0.0.1.

Both run under the same uvicorn with one worker and the same log level, so the only
difference between them is the application.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
_START_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Server:
    """A running server: where to reach it and where its log goes."""

    name: str
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


#: uvicorn worker processes for both servers (IVZ_BENCH_WORKERS; default: one per core).
WORKERS = int(os.environ.get("IVZ_BENCH_WORKERS", str(os.cpu_count() or 1)))


def ivz_command(port: int, database_url: str) -> list[str]:
    """``ivz serve`` exactly as an operator runs it (the console script of this venv)."""
    script = Path(sys.executable).with_name("ivz")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "fhir_server.cli"]
    return [
        *head,
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--database-url",
        database_url,
        "--workers",
        str(WORKERS),
    ]


def bare_command(port: int, log_level: str) -> list[str]:
    """The reference app under the uvicorn options ``ivz serve`` passes to ``uvicorn.run``."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.bare:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--log-level",
        log_level,
        "--no-access-log",
        "--proxy-headers",
    ]


@contextlib.contextmanager
def running(
    name: str, command: list[str], port: int, log: Path, env: dict[str, str]
) -> Iterator[Server]:
    """Run ``command`` until the block ends; fail fast (with its log) if it never gets ready."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        try:
            _wait_ready(proc, port, log)
            yield Server(name, port, log)
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        if _healthy(port):
            return
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {_START_TIMEOUT_S:.0f} s:\n{_tail(log)}")


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT first (uvicorn shuts down cleanly, closing its pool), then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])

"""Load generation: ``wrk`` when installed, otherwise an asyncio client in its own process.

Either way the client is a separate process with N keep-alive connections, a warm-up that is
not counted, then a fixed measured window; only 2xx responses count towards the rate. The
Python client speaks HTTP/1.1 over raw asyncio streams because a full HTTP client library
would spend more of the shared two cores than the server under test.

Run as ``python -m bench.load REQUESTS_FILE PORT ...`` it is the fallback client itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
RESULT_MARK = "IVZ_BENCH_RESULT "
_WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
_GRACE_S = 60.0


@dataclass(frozen=True)
class Workload:
    """What one measurement sends: requests cycled in order over ``connections`` connections."""

    requests: Sequence[tuple[str, str, bytes]]  # method, path, body (b"" for none)
    connections: int
    content_type: str = "application/fhir+json"


@dataclass(frozen=True)
class Timing:
    warmup_s: float
    seconds: float
    #: Hard cap on responses per measurement, so a run stops even if the clock misbehaves.
    max_requests: int = 2_000_000


@dataclass(frozen=True)
class LoadResult:
    """Counts of one measured window; ``rate`` is 2xx responses per second."""

    ok: int
    non_2xx: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


def generator() -> str:
    """``wrk`` if on PATH, unless ``IVZ_BENCH_LOADGEN=python`` asks for the fallback."""
    wanted = os.environ.get("IVZ_BENCH_LOADGEN", "auto").lower()
    if wanted == "python" or shutil.which("wrk") is None:
        return "python"
    return "wrk"


def write_requests(path: Path, requests: Sequence[tuple[str, str, bytes]]) -> None:
    """One ``METHOD TAB PATH TAB BODY`` line each (compact JSON holds no tab or newline)."""
    with path.open("wb") as out:
        for method, target, body in requests:
            if b"\t" in body or b"\n" in body:
                raise ValueError("request bodies must be single-line JSON")
            out.write(b"\t".join((method.encode(), target.encode(), body)) + b"\n")


def run_load(workload: Workload, port: int, timing: Timing, workdir: Path) -> LoadResult:
    """Warm up, then measure; the client runs as a child process of this one."""
    reqfile = workdir / "requests.txt"
    write_requests(reqfile, workload.requests)
    if generator() == "wrk":
        _wrk(reqfile, workload, port, timing.warmup_s, timing.max_requests)
        return _wrk(reqfile, workload, port, timing.seconds, timing.max_requests)
    command = [sys.executable, "-m", "bench.load", str(reqfile), str(port)]
    command += [str(workload.connections), str(timing.warmup_s), str(timing.seconds)]
    command += [str(timing.max_requests), workload.content_type]
    return _child(command, timing.warmup_s + timing.seconds + _GRACE_S)


def _wrk(reqfile: Path, workload: Workload, port: int, seconds: float, cap: int) -> LoadResult:
    command = ["wrk", "-t1", f"-c{workload.connections}", f"-d{max(1, round(seconds))}s"]
    command += ["--timeout", "30s", "-s", str(_WRK_SCRIPT), f"http://{HOST}:{port}/"]
    command += ["--", str(reqfile), workload.content_type, str(cap)]
    return _child(command, seconds + _GRACE_S)


def _child(command: list[str], timeout: float) -> LoadResult:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            return LoadResult(**json.loads(line[len(RESULT_MARK) :]))
    raise RuntimeError(f"load generator failed ({done.returncode}): {done.stderr[-2000:]}")


# --- the fallback client ------------------------------------------------------------------------


@dataclass
class _Window:
    """Counts only responses that complete inside [start, end)."""

    start: float
    end: float
    cap: int
    ok: int = 0
    non_2xx: int = 0
    errors: int = 0
    seen: int = 0
    latencies: list[float] = field(default_factory=list)

    def record(self, began: float, status: int | None) -> None:
        self.seen += 1
        now = time.perf_counter()
        if not self.start <= now < self.end:
            return
        if status is None:
            self.errors += 1
        elif 200 <= status < 300:
            self.ok += 1
            self.latencies.append(now - began)
        else:
            self.non_2xx += 1

    def open(self) -> bool:
        return time.perf_counter() < self.end and self.seen < self.cap


def _encode(method: str, target: str, body: bytes, port: int, content_type: str) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
    if body:
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def _header(head: bytes, name: bytes) -> bytes | None:
    found = re.search(rb"\r\n" + name + rb":[ \t]*([^\r]*)", head, re.IGNORECASE)
    return found.group(1).strip() if found else None


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        await reader.readexactly(size + 2)
        if size == 0:
            return


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool]:
    """Send one request, read its whole response; (status, connection still usable)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = _header(head, b"content-length")
    if length is not None:
        await reader.readexactly(int(length))
    elif b"chunked" in (_header(head, b"transfer-encoding") or b"").lower():
        await _read_chunked(reader)
    return status, (_header(head, b"connection") or b"").lower() != b"close"


async def _client(port: int, requests: list[bytes], first: int, window: _Window) -> None:
    index = first
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while window.open():
        began = time.perf_counter()
        try:
            if streams is None:
                streams = await asyncio.open_connection(HOST, port)
            status, keep = await _exchange(*streams, requests[index % len(requests)])
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            window.record(began, None)
            _close(streams)
            streams = None
            await asyncio.sleep(0.05)
            continue
        window.record(began, status)
        index += 1
        if not keep:
            _close(streams)
            streams = None
    _close(streams)


def _close(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if streams is not None:
        streams[1].close()


async def _drive(args: argparse.Namespace) -> _Window:
    lines = Path(args.requests).read_bytes().splitlines()
    parts = [line.split(b"\t", 2) for line in lines if line]
    requests = [
        _encode(p[0].decode(), p[1].decode(), p[2] if len(p) > 2 else b"", args.port, args.ctype)
        for p in parts
    ]
    start = time.perf_counter() + args.warmup
    window = _Window(start, start + args.seconds, args.max_requests)
    step = max(1, len(requests) // args.connections)
    clients = [_client(args.port, requests, i * step, window) for i in range(args.connections)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*clients), args.warmup + args.seconds + 30)
    return window


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _run(coroutine: Coroutine[None, None, _Window]) -> _Window:
    """uvloop when present: a cheaper client leaves more of the two cores to the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: list[str] | None = None) -> None:
    """The fallback client's entry point: prints one RESULT_MARK line of JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("requests")
    parser.add_argument("port", type=int)
    parser.add_argument("connections", type=int)
    parser.add_argument("warmup", type=float)
    parser.add_argument("seconds", type=float)
    parser.add_argument("max_requests", type=int)
    parser.add_argument("ctype")
    args = parser.parse_args(argv)
    window = _run(_drive(args))
    result = LoadResult(
        window.ok,
        window.non_2xx,
        window.errors,
        args.seconds,
        _percentile(window.latencies, 0.5) * 1000,
        _percentile(window.latencies, 0.99) * 1000,
    )
    print(RESULT_MARK + json.dumps(asdict(result)), flush=True)


if __name__ == "__main__":
    main()

"""MLLP framing (HL7 v2 over TCP): ``0x0B payload 0x1C 0x0D``, a server and a client.

Framing only: this module knows nothing of HL7 content. The server reads frames from many
connections at once, hands each payload to a handler in order of arrival on its connection
(HL7 requires in-order processing per link) and writes whatever the handler replies. Memory
per connection is bounded by ``max_message_bytes``: a larger frame is reported to the handler
as ``Frame(oversized=True)`` with only its first bytes, and the rest is read and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fhir_server.logging import get_logger

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_IDLE_TIMEOUT = 300.0
#: How long a write may wait for a peer that does not read (its receive buffer is full).
DEFAULT_WRITE_TIMEOUT = 30.0
#: Bytes kept of an oversized frame: enough to read MSH and answer it.
HEAD_BYTES = 8192
_READ_SIZE = 64 * 1024

log = get_logger(__name__)


def frame(payload: bytes) -> bytes:
    """Wrap one message for the wire."""
    return START_BLOCK + payload + END_BLOCK


@dataclass(frozen=True, slots=True)
class Frame:
    """One received frame; when ``oversized`` the payload is only its first ``HEAD_BYTES``."""

    payload: bytes
    oversized: bool = False


class FrameDecoder:
    """Incremental decoder: feed it whatever ``read()`` returned, get complete frames back.

    Bytes outside a frame are dropped. A start block inside an unfinished frame abandons that
    frame (the sender gave up on it and began again), as a start block never occurs in HL7.
    An oversized frame is reported once, as soon as it crosses the limit; its remaining bytes
    up to the end block are dropped and counted in ``discarded`` (per frame).
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self.max_message_bytes = max_message_bytes
        self._in_frame = False
        self._buf = bytearray()
        self._oversized = False
        self._pending_fs = False  # the last byte seen inside a frame was 0x1C
        self.discarded = 0

    @property
    def in_frame(self) -> bool:
        return self._in_frame

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        pos, n = 0, len(data)
        while pos < n:
            if not self._in_frame:
                start = data.find(START_BLOCK, pos)
                if start < 0:
                    return frames
                self._begin()
                pos = start + 1
                continue
            if self._pending_fs:
                self._pending_fs = False
                if data[pos] == 0x0D:
                    self._finish(frames, drop_last=True)
                    pos += 1
                    continue
            end = data.find(END_BLOCK, pos)
            stop = end if end >= 0 else n
            restart = data.find(START_BLOCK, pos, stop)
            if restart >= 0:
                self._begin()
                pos = restart + 1
                continue
            self._take(data[pos:stop], frames)
            if end < 0:
                self._pending_fs = data[n - 1] == 0x1C
                return frames
            self._finish(frames, drop_last=False)
            pos = end + 2
        return frames

    def _begin(self) -> None:
        self._in_frame = True
        self._oversized = False
        self._pending_fs = False
        self._buf.clear()
        self.discarded = 0

    def _take(self, chunk: bytes, frames: list[Frame]) -> None:
        if self._oversized:
            self.discarded += len(chunk)
            return
        self._buf += chunk
        if len(self._buf) > self.max_message_bytes + 1:  # +1: a trailing 0x1C may be the end
            self._oversized = True
            frames.append(Frame(bytes(self._buf[:HEAD_BYTES]), oversized=True))
            self.discarded += len(self._buf)
            self._buf = bytearray()

    def _finish(self, frames: list[Frame], drop_last: bool) -> None:
        if drop_last and self._buf:
            del self._buf[-1]  # the 0x1C that ended the previous chunk
        if not self._oversized:
            if len(self._buf) > self.max_message_bytes:
                frames.append(Frame(bytes(self._buf[:HEAD_BYTES]), oversized=True))
            else:
                frames.append(Frame(bytes(self._buf)))
        self._in_frame = False
        self._oversized = False
        self._buf = bytearray()


Reply = Callable[[bytes], Awaitable[None]]
Handler = Callable[[Frame, Reply], Awaitable[None]]


class MLLPServer:
    """An asyncio MLLP server; ``handler(frame, reply)`` runs once per frame, in order.

    ``reply`` may be awaited any number of times (enhanced mode sends an accept and then an
    application acknowledgment). Connections idle for ``idle_timeout`` seconds are closed, as
    are those that keep streaming an oversized frame beyond ``discard_limit`` bytes and those
    whose peer does not take a reply within ``write_timeout`` seconds (it stopped reading:
    without the bound its connection, and the messages queued behind it, would hang).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        max_connections: int = 512,
    ) -> None:
        self.handler = handler
        self.max_message_bytes = max_message_bytes
        self.idle_timeout = idle_timeout
        self.write_timeout = write_timeout
        self.max_connections = max_connections
        self.discard_limit = max(64 * max_message_bytes, 256 * 1024 * 1024)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def start(self, host: str, port: int, reuse_port: bool = False) -> None:
        """Listen; ``reuse_port`` lets several processes share the port (Linux balances)."""
        self._server = await asyncio.start_server(
            self._accept, host, port, reuse_port=reuse_port or None, limit=_READ_SIZE
        )

    async def serve_forever(self) -> None:
        assert self._server is not None, "server not started"
        await self._server.serve_forever()

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, give open connections ``grace`` seconds, then cut them."""
        if self._server is not None:
            self._server.close()
        if self._connections:
            _, pending = await asyncio.wait(set(self._connections), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.max_connections:
            log.warning("mllp connection refused: limit reached", limit=self.max_connections)
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("mllp connection lost", peer=_peer(writer), error=str(exc))
        except _PeerNotReading:
            log.warning("mllp peer does not read its replies: closed", peer=_peer(writer))
            writer.transport.abort()  # close() would wait to flush what the peer never reads
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("mllp connection failed", peer=_peer(writer))
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder(self.max_message_bytes)

        async def reply(payload: bytes) -> None:
            writer.write(frame(payload))
            try:
                await asyncio.wait_for(writer.drain(), self.write_timeout)
            except TimeoutError:
                raise _PeerNotReading from None

        while True:
            try:
                data = await asyncio.wait_for(reader.read(_READ_SIZE), self.idle_timeout)
            except TimeoutError:
                log.info("mllp connection idle: closed", peer=_peer(writer))
                return
            if not data:
                if decoder.in_frame:
                    log.info("mllp connection closed inside a frame", peer=_peer(writer))
                return
            for item in decoder.feed(data):
                await self.handler(item, reply)
            if decoder.discarded > self.discard_limit:
                log.warning("mllp oversized stream: closed", peer=_peer(writer))
                return


class _PeerNotReading(Exception):
    """A reply could not be written within the write timeout."""


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class MLLPClient:
    """One persistent connection: send a frame, await the next reply frame."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder(max_message_bytes)
        self._ready: list[Frame] = []

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        timeout: float = 10.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> MLLPClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=_READ_SIZE), timeout
        )
        return cls(reader, writer, max_message_bytes)

    async def send(self, message: bytes, timeout: float = DEFAULT_WRITE_TIMEOUT) -> None:
        """Write one frame; TimeoutError when the peer does not take it within ``timeout``
        (a peer that stopped reading must not hang the sender)."""
        self._writer.write(frame(message))
        async with asyncio.timeout(timeout):
            await self._writer.drain()

    async def receive(self, timeout: float = 30.0) -> bytes:
        """The next reply; TimeoutError when none comes, ConnectionError when the peer hangs up."""
        async with asyncio.timeout(timeout):
            while not self._ready:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    raise ConnectionError("connection closed by the peer before a reply")
                self._ready.extend(self._decoder.feed(data))
        item = self._ready.pop(0)
        if item.oversized:
            raise ValueError("reply frame exceeds the maximum message size")
        return item.payload

    async def request(self, message: bytes, timeout: float = 30.0) -> bytes:
        """Send and await the reply, each bounded by ``timeout``."""
        await self.send(message, timeout)
        return await self.receive(timeout)

    async def close(self) -> None:
        if self._writer.transport.get_write_buffer_size():  # unsent: the peer stopped reading
            self._writer.transport.abort()
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)

    async def __aenter__(self) -> MLLPClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

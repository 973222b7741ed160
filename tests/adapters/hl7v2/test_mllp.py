"""MLLP framing over real sockets: partial frames, garbage, limits, timeouts, many senders."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from adapters.mllp import END_BLOCK, START_BLOCK, Frame, FrameDecoder, MLLPClient, MLLPServer, Reply


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def framed(payload: bytes) -> bytes:
    return START_BLOCK + payload + END_BLOCK


# --- the decoder ------------------------------------------------------------------------------


def test_one_frame_and_several_frames_in_one_read() -> None:
    d = FrameDecoder()
    assert d.feed(framed(b"MSH|a")) == [Frame(b"MSH|a")]
    assert d.feed(framed(b"one") + framed(b"two") + framed(b"")) == [
        Frame(b"one"),
        Frame(b"two"),
        Frame(b""),
    ]


def test_a_frame_fed_byte_by_byte_comes_out_once() -> None:
    d = FrameDecoder()
    stream = framed(b"MSH|^~\\&|A\rPID|1") + framed(b"second")
    out: list[Frame] = []
    for i in range(len(stream)):
        out += d.feed(stream[i : i + 1])
    assert out == [Frame(b"MSH|^~\\&|A\rPID|1"), Frame(b"second")]


@pytest.mark.parametrize("cut", range(1, 12))
def test_every_split_point_gives_the_same_frames(cut: int) -> None:
    stream = b"junk" + framed(b"MSH|1\r") + b"\r\n" + framed(b"MSH|2\r")
    d = FrameDecoder()
    assert d.feed(stream[:cut]) + d.feed(stream[cut:]) == [Frame(b"MSH|1\r"), Frame(b"MSH|2\r")]


def test_end_block_split_between_reads() -> None:
    d = FrameDecoder()
    assert d.feed(START_BLOCK + b"abc\x1c") == []
    assert d.feed(b"\x0d") == [Frame(b"abc")]


def test_a_lone_file_separator_is_content() -> None:
    d = FrameDecoder()
    assert d.feed(START_BLOCK + b"a\x1c") == []
    assert d.feed(b"b" + END_BLOCK) == [Frame(b"a\x1cb")]


def test_garbage_outside_frames_is_skipped() -> None:
    d = FrameDecoder()
    noise = b"GET / HTTP/1.1\r\n\x00\xff\x1c\x0d"
    assert d.feed(noise + framed(b"x") + noise + framed(b"y") + noise) == [Frame(b"x"), Frame(b"y")]
    assert not d.in_frame


def test_a_new_start_block_abandons_an_unfinished_frame() -> None:
    d = FrameDecoder()
    assert d.feed(START_BLOCK + b"half a mess") == []
    assert d.feed(framed(b"whole")) == [Frame(b"whole")]


def test_oversized_frame_is_reported_once_with_its_head_then_decoding_goes_on() -> None:
    d = FrameDecoder(max_message_bytes=100)
    big = b"MSH|^~\\&|BIG\r" + b"X" * 1000
    out = d.feed(START_BLOCK + big[:500])
    assert len(out) == 1 and out[0].oversized and out[0].payload.startswith(b"MSH|^~\\&|BIG")
    assert d.feed(big[500:] + END_BLOCK) == []
    assert d.feed(framed(b"small")) == [Frame(b"small")]


def test_a_frame_of_exactly_the_limit_passes() -> None:
    d = FrameDecoder(max_message_bytes=10)
    assert d.feed(framed(b"0123456789")) == [Frame(b"0123456789")]
    assert d.feed(framed(b"0123456789A"))[0].oversized


def test_memory_stays_bounded_while_an_oversized_frame_streams() -> None:
    d = FrameDecoder(max_message_bytes=1000)
    d.feed(START_BLOCK)
    for _ in range(200):
        d.feed(b"Z" * 10_000)
    assert len(d._buf) == 0 and d.discarded >= 1_990_000


# --- the server and client over sockets ----------------------------------------------------------


async def _start(
    handler: Callable[[Frame, Reply], Awaitable[None]] | None = None, **kwargs: Any
) -> MLLPServer:
    async def echo(frame: Frame, reply: Reply) -> None:
        await reply((b"TOO BIG:" if frame.oversized else b"ACK:") + frame.payload[:20])

    server = MLLPServer(handler or echo, **kwargs)
    await server.start("127.0.0.1", 0)
    return server


def test_several_messages_per_connection_answered_in_order() -> None:
    async def main() -> list[bytes]:
        server = await _start()
        try:
            async with await MLLPClient.connect("127.0.0.1", server.port) as client:
                for i in range(5):  # pipelined: all sent before any reply is read
                    await client.send(f"m{i}".encode())
                return [await client.receive(5) for _ in range(5)]
        finally:
            await server.close()

    assert run(main()) == [f"ACK:m{i}".encode() for i in range(5)]


def test_partial_frames_across_writes_and_garbage_between_frames() -> None:
    async def main() -> list[bytes]:
        server = await _start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            stream = b"noise" + framed(b"first") + b"\r\n\x00" + framed(b"second")
            for i in range(0, len(stream), 3):
                writer.write(stream[i : i + 3])
                await writer.drain()
                await asyncio.sleep(0.001)
            client = MLLPClient(reader, writer)
            replies = [await client.receive(5), await client.receive(5)]
            await client.close()
            return replies
        finally:
            await server.close()

    assert run(main()) == [b"ACK:first", b"ACK:second"]


def test_idle_connections_are_closed() -> None:
    async def main() -> bytes:
        server = await _start(idle_timeout=0.3)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(START_BLOCK + b"never finished")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 5)  # b"" once the server hangs up
            writer.close()
            return data
        finally:
            await server.close()

    assert run(main()) == b""


def test_oversized_message_is_answered_and_the_connection_stays_usable() -> None:
    async def main() -> list[bytes]:
        server = await _start(max_message_bytes=1000)
        try:
            async with await MLLPClient.connect("127.0.0.1", server.port) as client:
                await client.send(b"MSH|big" + b"x" * 50_000)
                first = await client.receive(5)
                second = await client.request(b"MSH|small", 5)
                return [first, second]
        finally:
            await server.close()

    assert run(main()) == [b"TOO BIG:MSH|bigxxxxxxxxxxxxx", b"ACK:MSH|small"]


def test_an_endless_oversized_stream_is_cut_off() -> None:
    async def main() -> bool:
        server = await _start(max_message_bytes=1000)
        server.discard_limit = 200_000
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(START_BLOCK)
            try:
                for _ in range(1000):
                    writer.write(b"y" * 10_000)
                    await writer.drain()
            except ConnectionError:
                return True
            return (await asyncio.wait_for(reader.read(), 5)).startswith(b"\x0bTOO BIG")
        finally:
            await server.close()

    assert run(main())


def test_many_concurrent_senders_each_get_their_own_replies_in_order() -> None:
    senders, each = 60, 15

    async def handler(frame: Frame, reply: Reply) -> None:
        await asyncio.sleep(0.001)  # let the connections interleave
        await reply(b"ACK:" + frame.payload)

    async def sender(port: int, n: int) -> list[bytes]:
        async with await MLLPClient.connect("127.0.0.1", port) as client:
            return [await client.request(f"{n}-{i}".encode(), 20) for i in range(each)]

    async def main() -> list[list[bytes]]:
        server = await _start(handler)
        try:
            return await asyncio.gather(*(sender(server.port, n) for n in range(senders)))
        finally:
            await server.close()

    results = run(main())
    for n, replies in enumerate(results):
        assert replies == [f"ACK:{n}-{i}".encode() for i in range(each)]


def test_two_replies_for_one_message_enhanced_mode_style() -> None:
    async def handler(frame: Frame, reply: Reply) -> None:
        await reply(b"CA")
        await reply(b"AA")

    async def main() -> list[bytes]:
        server = await _start(handler)
        try:
            async with await MLLPClient.connect("127.0.0.1", server.port) as client:
                await client.send(b"MSH|x")
                return [await client.receive(5), await client.receive(5)]
        finally:
            await server.close()

    assert run(main()) == [b"CA", b"AA"]


def test_a_failing_handler_costs_only_its_own_connection() -> None:
    async def handler(frame: Frame, reply: Reply) -> None:
        if frame.payload == b"boom":
            raise RuntimeError("bug")
        await reply(b"ok")

    async def main() -> tuple[str, bytes]:
        server = await _start(handler)
        try:
            async with await MLLPClient.connect("127.0.0.1", server.port) as bad:
                await bad.send(b"boom")
                try:
                    await bad.receive(5)
                    lost = "reply"
                except ConnectionError:
                    lost = "closed"
            async with await MLLPClient.connect("127.0.0.1", server.port) as good:
                return lost, await good.request(b"fine", 5)
        finally:
            await server.close()

    assert run(main()) == ("closed", b"ok")


def test_client_times_out_when_no_reply_comes() -> None:
    async def silent(frame: Frame, reply: Reply) -> None:
        return None

    async def main() -> None:
        server = await _start(silent)
        try:
            async with await MLLPClient.connect("127.0.0.1", server.port) as client:
                with pytest.raises(TimeoutError):
                    await client.request(b"MSH|x", 0.2)
        finally:
            await server.close()

    run(main())


def test_close_lets_a_running_handler_finish() -> None:
    started = asyncio.Event

    async def main() -> bytes:
        began = started()

        async def slow(frame: Frame, reply: Reply) -> None:
            began.set()
            await asyncio.sleep(0.3)
            await reply(b"done")

        server = await _start(slow)
        client = await MLLPClient.connect("127.0.0.1", server.port)
        await client.send(b"MSH|x")
        await began.wait()
        closing = asyncio.create_task(server.close(grace=5))
        reply = await client.receive(5)
        await closing
        await client.close()
        return reply

    assert run(main()) == b"done"


def test_a_peer_that_stops_reading_its_replies_is_disconnected() -> None:
    """Replies that the peer never reads fill the socket buffers; after ``write_timeout`` the
    server gives up on the connection instead of hanging on it."""

    async def big_reply(frame: Frame, reply: Reply) -> None:
        await reply(b"A" * (4 * 1024 * 1024))

    async def main() -> tuple[int, float]:
        server = await _start(big_reply, write_timeout=0.3)
        try:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.setblocking(False)
            _, writer = await asyncio.open_connection(sock=sock)
            for _ in range(8):  # sent, never read
                writer.write(framed(b"MSH|x"))
            await writer.drain()
            clock = asyncio.get_running_loop().time
            start = clock()
            while not server.connections and clock() - start < 5:  # first: it was taken up
                await asyncio.sleep(0.01)
            assert server.connections == 1
            start = clock()
            while server.connections and clock() - start < 5:  # then: it is given up
                await asyncio.sleep(0.05)
            took = clock() - start
            writer.transport.abort()
            return server.connections, took
        finally:
            await server.close()

    connections, took = run(main())
    assert connections == 0 and took < 4


def test_a_send_to_a_peer_that_does_not_read_times_out() -> None:
    async def main() -> None:
        async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(30)  # accepts, never reads

        server = await asyncio.start_server(deaf, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            client = await MLLPClient.connect("127.0.0.1", port)
            with pytest.raises(TimeoutError):
                await client.send(b"MSH|" + b"x" * (64 * 1024 * 1024), 0.3)
            await asyncio.wait_for(client.close(), 5)  # closing does not hang either
        finally:
            server.close()

    run(main())

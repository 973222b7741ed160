"""``POST /hl7v2``: one HL7 v2 message in the body, its acknowledgment(s) in the response.

The same ``Intake`` as MLLP, so the same store-then-ACK rules: 200 with AA/AE/AR (or, in
enhanced mode, the ACKs MSH-15/16 ask for, one after the other); 204 when they ask for none.
HTTP status codes are for what is not an HL7 message at all: 415, 413, 400.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from adapters.hl7v2.ack import REJECT, build_ack, encode_ack, wire_charset
from adapters.hl7v2.listener import Intake
from adapters.hl7v2.parse import read_header, split_messages
from adapters.hl7v2.types import V2Error

CONTENT_TYPES = frozenset({"application/hl7-v2", "x-application/hl7-v2+er7", "text/plain"})
PATH = "/hl7v2"


class _TooLarge(Exception):
    pass


def _intake(request: Request, given: Intake | None) -> Intake:
    """The app's intake, built on first use over the app's ``ResourceService``."""
    if given is not None:
        return given
    state = request.app.state
    intake: Intake | None = getattr(state, "hl7_intake", None)
    if intake is None:
        intake = Intake(state.service)
        state.hl7_intake = intake
    return intake


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _several(body: bytes) -> bool:
    try:
        return len(split_messages(body)) > 1
    except Exception:
        return False  # let the intake reject what cannot be read


def routes(intake: Intake | None = None) -> list[Route]:
    """The intake route; without ``intake`` it uses ``app.state.service`` (set in lifespan)."""

    async def receive(request: Request) -> Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in CONTENT_TYPES:
            return PlainTextResponse(
                f"Content-Type must be one of {', '.join(sorted(CONTENT_TYPES))}", 415
            )
        current = _intake(request, intake)
        limit = current.settings.max_message_bytes
        try:
            body = await _body(request, limit)
        except _TooLarge:
            return PlainTextResponse(f"An HL7 v2 message may have at most {limit} bytes", 413)
        if not body.strip():
            return PlainTextResponse("The body is empty: send one HL7 v2 message", 400)
        media_type = f"{media_type}; charset={wire_charset(body)}"
        if _several(body):
            return Response(_one_per_request(body), media_type=media_type)
        replies: list[bytes] = []

        async def reply(payload: bytes) -> None:
            replies.append(payload)

        await current.receive(body, "http", reply)
        if not replies:
            return Response(status_code=204)
        return Response(b"".join(replies), media_type=media_type)

    return [Route(PATH, receive, methods=["POST"], name="hl7v2_intake")]


def _one_per_request(body: bytes) -> bytes:
    try:
        header = read_header(split_messages(body)[0])
    except Exception:
        header = None
    error = V2Error(
        "HTTP intake takes one message per request; send files and batches with "
        "'ivz hl7 ingest' or one request per message",
        reject=True,
    )
    return encode_ack(build_ack(header, REJECT, error), body)

"""The reference server: a bare Starlette app with nothing but routing and a byte copy.

It answers the same URLs as ivz-bridge with the same bytes and content type, so the ratio
ivz / bare isolates what the FHIR server adds (validation, storage, headers) on top of the
shared HTTP stack (uvicorn + Starlette). Served as ``uvicorn bench.bare:app``; the body to
serve is read once at start from the file named by ``IVZ_BENCH_BODY_FILE``.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MEDIA_TYPE = os.environ.get("IVZ_BENCH_MEDIA_TYPE", "application/fhir+json;charset=utf-8")
_BODY_FILE = os.environ.get("IVZ_BENCH_BODY_FILE")
BODY = Path(_BODY_FILE).read_bytes() if _BODY_FILE else b"{}"


async def read(request: Request) -> Response:
    """The stored Patient, whatever the id: the cost floor of a read."""
    return Response(BODY, 200, media_type=MEDIA_TYPE)


async def echo(request: Request) -> Response:
    """The posted body, returned as a create returns its representation."""
    return Response(await request.body(), 201, media_type=MEDIA_TYPE)


async def healthz(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[
        Route("/fhir/{resource_type}/{resource_id}", read, methods=["GET"]),
        Route("/fhir/{resource_type}", echo, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)

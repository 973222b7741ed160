"""``POST /ingest/insurer?layout=…``: an export as the body (CSV, JSON, JSON Lines) or as the
``file`` part of a multipart form; the answer is the import report as JSON."""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.insurer import layout as layouts
from adapters.insurer.ingest import IngestError, ingest
from fhir_server.access.policy import access_of

_LAYOUT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: Larger exports belong on the command line (``ivz ingest insurer``).
MAX_BYTES = 200 * 1024 * 1024

_MEDIA_FORMATS = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
    "application/jsonlines": "jsonl",
}
#: Bodies whose format is told by their content instead.
_SNIFFED = frozenset({"", "text/plain", "application/octet-stream"})
_EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def routes() -> list[Route]:
    """The adapter's endpoints, to be appended to the application's routes."""
    return [Route("/ingest/insurer", ingest_insurer, methods=["POST"])]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _media(value: str | None) -> tuple[str, dict[str, str]]:
    """Media type and parameters of a Content-Type header."""
    kind, *params = (value or "").split(";")
    parsed = {}
    for param in params:
        name, _, val = param.partition("=")
        parsed[name.strip().lower()] = val.strip().strip('"')
    return kind.strip().lower(), parsed


def _format_of(media: str, filename: str | None = None) -> tuple[str | None, bool]:
    """(format or None to sniff, whether the media type is acceptable)."""
    if media in _MEDIA_FORMATS:
        return _MEDIA_FORMATS[media], True
    if filename:
        for ext, kind in _EXTENSIONS.items():
            if filename.lower().endswith(ext):
                return kind, True
    return None, media in _SNIFFED


async def ingest_insurer(request: Request) -> Response:
    name = request.query_params.get("layout", "")
    if not name:
        return _error(400, "the query parameter 'layout' is required, e.g. ?layout=tk")
    if not _LAYOUT_NAME.match(name):  # a name, never a path on the server
        return _error(400, f"'{name[:80]}' is not a layout name")
    try:
        layouts.find(name)
    except layouts.LayoutError as exc:
        return _error(400, str(exc))
    if int(request.headers.get("content-length") or 0) > MAX_BYTES:
        return _error(413, f"exports above {MAX_BYTES // 2**20} MB go through the command line")
    media, params = _media(request.headers.get("content-type"))
    encoding = request.query_params.get("encoding") or params.get("charset")
    requested = request.query_params.get("format")
    if media == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return _error(400, "a multipart upload needs the export in a part named 'file'")
            data = await upload.read()
            part_media, part_params = _media(upload.content_type)
            detected, _ = _format_of(part_media, upload.filename)
            encoding = encoding or part_params.get("charset")
    else:
        detected, acceptable = _format_of(media)
        if not acceptable and not requested:
            return _error(
                415,
                f"unsupported Content-Type '{media}': send text/csv, application/json, "
                "application/x-ndjson or multipart/form-data with a 'file' part",
            )
        data = await request.body()
    if len(data) > MAX_BYTES:
        return _error(413, f"exports above {MAX_BYTES // 2**20} MB go through the command line")
    service: Any = request.app.state.service
    only_ik: str | None = None
    client = access_of(getattr(request.state, "principal", None))
    if client is not None:  # a restricted client imports its own members only
        if client.kind != "insurer" or client.value is None:
            return _error(403, "only administrators and insurers (with their IK) import exports")
        only_ik = client.value
    try:
        report = await run_in_threadpool(
            lambda: ingest(
                service,
                data,
                name,
                file_format=requested or detected,
                encoding=encoding,
                only_ik=only_ik,
                workers=1,  # never fork a threaded server (see docs/insurer-adapter.md)
            )
        )
    except IngestError as exc:
        return _error(422, str(exc))
    return JSONResponse(report.to_dict())

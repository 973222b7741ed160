"""HTTP of FHIR Bulk Data export (docs/bulk.md) and ``Patient/{id}/$everything``.

Kick-off checks everything it can and answers 202 with the status URL; the job itself runs in
``fhir_server.bulk.worker``. The requesting client (``request.state.principal``, set by the
authorization layer) is recorded on the job, and only that client may poll, fetch or delete it.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from fhir_server.api import bundles
from fhir_server.api.http import body_format, parse_resource, prefer, read_body
from fhir_server.api.operations import operation
from fhir_server.api.render import respond, view_of
from fhir_server.api.rest import access, base_url
from fhir_server.bulk.everything import everything
from fhir_server.bulk.ndjson import file_path, remove_dir
from fhir_server.bulk.runner import ExportRunner, group_members
from fhir_server.bulk.spec import parse_spec
from fhir_server.bulk.worker import ExportWorker
from fhir_server.fhir.outcomes import FhirError, Issue, information, operation_outcome
from fhir_server.service.clock import instant, now
from fhir_server.service.resources import ResourceService
from fhir_server.service.validation import check_id
from fhir_server.settings import Settings
from fhir_server.storage import export_jobs
from fhir_server.storage.export_jobs import COMPLETED, FAILED, JobRow

NDJSON = "application/fhir+ndjson"
_ACCEPTED_MEDIA = ("application/fhir+json", "application/json", "*/*", "application/*")
#: Query parameters every interaction accepts; not export parameters.
_GENERAL = frozenset({"_format", "_pretty"})


def start_export_worker(service: ResourceService, settings: Settings) -> ExportWorker:
    """The background export threads; create_app starts them and stops them on shutdown."""
    runner = ExportRunner(
        service,
        Path(settings.export_dir).resolve(),
        page_size=settings.export_page_size,
        max_lines=settings.export_max_lines,
    )
    worker = ExportWorker(runner, settings.export_workers, settings.export_lease_seconds)
    worker.start()
    return worker


def _worker(request: Request) -> ExportWorker:
    worker: ExportWorker = request.app.state.export_worker
    return worker


def _service(request: Request) -> ResourceService:
    service: ResourceService = request.app.state.service
    return service


def _principal(request: Request) -> str | None:
    """Who asked: recorded on the job. Restricting the export itself to the client's access
    rules is the authorization layer's part (docs/bulk.md)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        return None
    return str(getattr(principal, "client_id", None) or principal)


# --- kick-off -----------------------------------------------------------------------------------


@operation("/$export", "GET")
@operation("/$export", "POST")
async def export_system(request: Request) -> Response:
    """System level: every resource of the requested types."""
    return await _kick_off(request, "system", None)


@operation("/Patient/$export", "GET")
@operation("/Patient/$export", "POST")
async def export_patients(request: Request) -> Response:
    """Patient level: the Patient compartments of all patients."""
    return await _kick_off(request, "patient", None)


@operation("/Group/{group_id}/$export", "GET")
@operation("/Group/{group_id}/$export", "POST")
async def export_group(request: Request, group_id: str) -> Response:
    """Group level: the Patient compartments of the Group's member patients."""
    check_id(group_id)
    return await _kick_off(request, "group", group_id)


async def _kick_off(request: Request, level: str, group_id: str | None) -> Response:
    if prefer(request, "respond-async") is None:
        raise FhirError(400, "invalid", "$export is asynchronous: send 'Prefer: respond-async'")
    accept = request.headers.get("accept")
    if accept and not any(m in accept.lower() for m in _ACCEPTED_MEDIA):
        raise FhirError(400, "invalid", "$export answers in application/fhir+json (Accept)")
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in _GENERAL]
    if request.method == "POST":
        pairs += await _body_pairs(request)
    spec = parse_spec(level, pairs, group_id)
    client = access(request)
    if client is not None:  # the job exports only what this client may see
        spec = dataclasses.replace(spec, access=[client.client_id, client.kind, client.value])
    service = _service(request)
    worker = _worker(request)

    def check() -> None:
        if group_id is not None:
            group_members(service, group_id, client)  # 404 for an unknown or hidden Group
        worker.runner.check(spec)

    await run_in_threadpool(check)
    job_id = str(uuid.uuid4())
    base = base_url(request)
    suffix = request.url.path.removeprefix(request.app.state.settings.base_path)
    query = f"?{request.url.query}" if request.url.query else ""
    await run_in_threadpool(
        export_jobs.insert,
        service.db,
        job_id,
        f"{base}{suffix}{query}",
        spec.to_json(),
        _principal(request),
        now(),
    )
    worker.wake()
    headers = {"Content-Location": f"{base}/$export-status/{job_id}"}
    return respond(information(f"Export {job_id} accepted"), view_of(request), 202, headers)


async def _body_pairs(request: Request) -> list[tuple[str, str]]:
    """A POST kick-off's Parameters resource as (name, value) pairs."""
    limit: int = request.app.state.settings.max_body_bytes
    raw = await read_body(request, limit)
    if not raw.strip():
        return []
    params = parse_resource(raw, body_format(request))
    if not isinstance(params, dict) or params.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "POST $export takes a Parameters resource")
    parameters = params.get("parameter") or []
    if not isinstance(parameters, list) or not all(isinstance(p, dict) for p in parameters):
        raise FhirError(400, "invalid", "Parameters.parameter must be a list of parameters")
    pairs: list[tuple[str, str]] = []
    for param in parameters:
        values = [v for k, v in param.items() if k.startswith("value") and isinstance(v, str)]
        if "name" not in param or len(values) != 1:
            raise FhirError(400, "invalid", "Each $export parameter needs a name and one value")
        pairs.append((str(param["name"]), values[0]))
    return pairs


# --- status, files, delete ----------------------------------------------------------------------


async def _job(request: Request, job_id: str) -> JobRow:
    """The job, or 404 when it does not exist or belongs to another client."""
    row = await run_in_threadpool(export_jobs.get, _service(request).db, job_id)
    if row is None or (row.principal is not None and row.principal != _principal(request)):
        raise FhirError(404, "not-found", f"No export job {job_id[:64]}")
    return row


@operation("/$export-status/{job_id}", "GET")
async def export_status(request: Request, job_id: str) -> Response:
    """202 with X-Progress while running, the manifest when complete, 500 when it failed."""
    row = await _job(request, job_id)
    if row.status == FAILED:
        issue = Issue("exception", row.error or "The export failed")
        return respond(operation_outcome([issue]), view_of(request), 500)
    if row.status != COMPLETED:
        headers = {"X-Progress": row.progress or row.status, "Retry-After": "1"}
        return Response(status_code=202, headers=headers)
    return JSONResponse(_manifest(request, row), headers={"Expires": "0"})


def _manifest(request: Request, row: JobRow) -> dict[str, Any]:
    base = base_url(request)
    files: list[dict[str, Any]] = json.loads(row.output or "[]")
    return {
        "transactionTime": instant(row.transaction_time or row.created_at),
        "request": row.request_url,
        "requiresAccessToken": request.app.state.settings.auth == "on",
        "output": [
            {
                "type": f["type"],
                "url": f"{base}/$export-file/{row.id}/{f['name']}",
                "count": f["count"],
            }
            for f in files
        ],
        "error": [],
    }


@operation("/$export-status/{job_id}", "DELETE")
async def export_delete(request: Request, job_id: str) -> Response:
    """Cancel a running job or remove a finished one, with its files."""
    await _job(request, job_id)
    db = _service(request).db
    await run_in_threadpool(export_jobs.remove, db, job_id)
    await run_in_threadpool(remove_dir, _worker(request).runner.root / job_id)
    return respond(information(f"Export {job_id} deleted"), view_of(request), 202)


@operation("/$export-file/{job_id}/{name}", "GET")
async def export_file(request: Request, job_id: str, name: str) -> Response:
    """One NDJSON output file of a completed job, streamed from disk."""
    row = await _job(request, job_id)
    path = file_path(_worker(request).runner.root, row.id, name)
    if row.status != COMPLETED or path is None:
        raise FhirError(404, "not-found", f"No file {name[:80]} in export {job_id[:64]}")
    return FileResponse(path, media_type=NDJSON)


# --- $everything --------------------------------------------------------------------------------


@operation("/Patient/{patient_id}/$everything", "GET")
async def patient_everything(request: Request, patient_id: str) -> Response:
    """A searchset Bundle: the Patient, its compartment, and the care resources it references."""
    check_id(patient_id)
    view = view_of(request)
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k not in _GENERAL]
    base = base_url(request)
    result = await run_in_threadpool(
        everything, _service(request), patient_id, pairs, base, access(request)
    )
    count = [(k, v) for k, v in pairs if k == "_count"]
    path = f"{base}/Patient/{patient_id}/$everything"
    return respond(bundles.searchset(result, path, count, base, view), view)

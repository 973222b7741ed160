"""HTTP of the pathway operations (docs/pathway.md): ``$verdict``, ``$amend-verdict``,
``$pathway``, ``$program-report`` and the report pages. Parsing and rendering as in rest.py;
the use cases live in fhir_server/pathway/.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fhir_server.api.http import body_format, parse_resource, read_body
from fhir_server.api.operations import operation, page
from fhir_server.api.render import View, resource_value, respond, view_of
from fhir_server.api.rest import access, base_url
from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway.report import Report, measure_report, parse_period, program_report
from fhir_server.pathway.svg import program_svg
from fhir_server.pathway.verdict import VerdictResult, amend_verdict, record_verdict
from fhir_server.pathway.view import pathway
from fhir_server.service.clock import instant
from fhir_server.service.resources import ResourceService
from fhir_server.service.validation import check_id
from fhir_server.storage.repository import StoredVersion

Decide = Callable[[ResourceService, str, Any], VerdictResult]


def _service(request: Request) -> ResourceService:
    service: ResourceService = request.app.state.service
    return service


@operation("/ServiceRequest/{resource_id}/$verdict", "POST")
async def verdict(request: Request, resource_id: str) -> Response:
    """Record the team's verdict; Parameters in, Parameters (verdict, carePlan, referral) out."""
    return await _decide(request, resource_id, record_verdict)


@operation("/ServiceRequest/{resource_id}/$amend-verdict", "POST")
async def amend(request: Request, resource_id: str) -> Response:
    """Correct a recorded verdict (with a ``reason``); the old CarePlan is revoked."""
    return await _decide(request, resource_id, amend_verdict)


async def _decide(request: Request, resource_id: str, use_case: Decide) -> Response:
    check_id(resource_id)
    view = view_of(request)
    limit: int = request.app.state.settings.max_body_bytes
    params = parse_resource(await read_body(request, limit), body_format(request))
    await run_in_threadpool(_service(request).read, "ServiceRequest", resource_id, access(request))
    result = await run_in_threadpool(use_case, _service(request), resource_id, params)
    out = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "verdict", "resource": _embed(result.verdict, view)},
            {"name": "carePlan", "resource": _embed(result.care_plan, view)},
            {"name": "referral", "resource": _embed(result.referral, view)},
        ],
    }
    return respond(out, view)


def _embed(stored: StoredVersion, view: View) -> Any:
    assert stored.content is not None
    return resource_value(stored.content, view)


@operation("/ServiceRequest/{resource_id}/$pathway", "GET")
async def pathway_bundle(request: Request, resource_id: str) -> Response:
    """Everything about one case, its state first, as a ``collection`` Bundle."""
    check_id(resource_id)
    view = view_of(request)
    service = _service(request)
    client = access(request)

    def read() -> Any:
        with service.unit(write=False, access=client) as unit:
            unit.check_visible("ServiceRequest", resource_id)
            found = pathway(unit, resource_id)
            # The case is the client's; its parts may not all be.
            seen = unit.visible([(d.stored.resource_type, d.stored.id) for d in found.documents])
            kept = [d for d in found.documents if (d.stored.resource_type, d.stored.id) in seen]
            return dataclasses.replace(found, documents=kept)
            return found

    found = await run_in_threadpool(read)
    base = base_url(request)
    entries: list[dict[str, Any]] = [
        {"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": found.state}
    ]
    entries += [
        {"fullUrl": f"{base}/{d.ref}", "resource": _embed(d.stored, view)} for d in found.documents
    ]
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(service.clock())},
        "type": "collection",
        "timestamp": instant(service.clock()),
        "entry": entries,
    }
    return respond(bundle, view)


async def _report(request: Request) -> Report:
    if access(request) is not None:
        raise FhirError(
            403, "forbidden", "The program report covers every case: administrators only"
        )
    params = request.query_params
    period = parse_period(params.get("period-start"), params.get("period-end"))
    return await run_in_threadpool(program_report, _service(request), period)


@operation("/$program-report", "GET")
async def program_measure_report(request: Request) -> Response:
    """The program's figures as a MeasureReport (measure ivz-program-report, type summary)."""
    view = view_of(request)
    report = await _report(request)
    return respond(measure_report(report, _service(request).clock()), view)


@page("/report/program.json")
async def program_json(request: Request) -> Response:
    """The same figures as plain JSON, for dashboards."""
    return JSONResponse((await _report(request)).as_json())


@page("/report/program.svg")
async def program_figure(request: Request) -> Response:
    """Confirmed vs. not confirmed, the program and each team, as an SVG figure."""
    svg = program_svg(await _report(request))
    return Response(svg, media_type="image/svg+xml")

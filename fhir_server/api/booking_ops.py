"""Operation routes: see fhir_server/api/operations.py and docs/pathway.md."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.operations import operation
from fhir_server.api.render import resource_value, respond, view_of
from fhir_server.api.rest import access, base_url
from fhir_server.pathway.rules import book_referral
from fhir_server.service.resources import ResourceService
from fhir_server.service.validation import check_id


@operation("/ServiceRequest/{resource_id}/$book", "POST")
async def book(request: Request, resource_id: str) -> Response:
    """Book a referral that is not booked yet (no Slot was free when it arrived): 201 with the
    Appointment; 409 when it is booked already, not active, or still no Slot is free."""
    check_id(resource_id)
    view = view_of(request)
    service: ResourceService = request.app.state.service
    await run_in_threadpool(service.read, "ServiceRequest", resource_id, access(request))
    stored = await run_in_threadpool(book_referral, service, resource_id)
    assert stored.content is not None
    location = f"{base_url(request)}/Appointment/{stored.id}/_history/{stored.version_id}"
    headers = {"Location": location, "ETag": f'W/"{stored.version_id}"'}
    return respond(resource_value(stored.content, view), view, 201, headers)

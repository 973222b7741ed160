"""``GET [base]/Subscription/{id}/$status``: the Subscription's status and its outbox counts."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.operations import operation
from fhir_server.api.render import respond, view_of
from fhir_server.api.rest import access
from fhir_server.fhir import jsonio
from fhir_server.service.resources import ResourceService
from fhir_server.service.validation import check_id
from fhir_server.storage import outbox


def status_parameters(service: ResourceService, subscription_id: str) -> dict[str, Any]:
    """Parameters: status, error, and how many notifications are pending/delivered/failed."""
    with service.unit(write=False) as unit:
        stored = unit.read("Subscription", subscription_id)
        counts = outbox.status(unit.conn, subscription_id)
    assert stored.content is not None
    doc = jsonio.loads_trusted(stored.content)
    params: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": f"Subscription/{subscription_id}"},
        },
        {"name": "status", "valueCode": doc.get("status")},
    ]
    if doc.get("error"):
        params.append({"name": "error", "valueString": doc["error"]})
    for state in (outbox.PENDING, outbox.DELIVERED, outbox.FAILED, outbox.CANCELLED):
        params.append({"name": state, "valueInteger": counts.counts.get(state, 0)})
    if counts.last_error:
        params.append({"name": "lastError", "valueString": counts.last_error})
    return {"resourceType": "Parameters", "parameter": params}


@operation("/Subscription/{resource_id}/$status", "GET")
async def subscription_status(request: Request, resource_id: str) -> Response:
    check_id(resource_id)
    service: ResourceService = request.app.state.service
    await run_in_threadpool(service.read, "Subscription", resource_id, access(request))
    value = await run_in_threadpool(status_parameters, service, resource_id)
    return respond(value, view_of(request))

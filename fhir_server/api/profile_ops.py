"""``$validate`` against the program profiles, and the ``/profiles/`` pages.

``POST /fhir/{type}/$validate`` (and ``/{type}/{id}/$validate``) takes the resource itself or
a Parameters with ``resource`` and optional ``profile``s (also ``?profile=``); it answers 200
with an OperationOutcome listing every error, or one ``information`` issue "valid", and never
stores anything. See docs/profiles.md.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from fhir_server.api.http import body_format, parse_resource, read_body
from fhir_server.api.operations import operation, page
from fhir_server.api.render import respond, view_of
from fhir_server.fhir.outcomes import FhirError, Issue, operation_outcome
from fhir_server.profiles.registry import PROFILES_DIR, registry
from fhir_server.service.validation import check_id, check_type, validate_resource

_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*\.(json|html)$")


@operation("/{resource_type}/$validate", "POST")
async def validate_type(request: Request, resource_type: str) -> Response:
    return await _validate(request, resource_type)


@operation("/{resource_type}/{resource_id}/$validate", "POST")
async def validate_instance(request: Request, resource_type: str, resource_id: str) -> Response:
    check_id(resource_id)
    return await _validate(request, resource_type)


async def _validate(request: Request, resource_type: str) -> Response:
    check_type(resource_type)
    fmt = body_format(request)
    body = await read_body(request, request.app.state.settings.max_body_bytes)
    payload = parse_resource(body, fmt)
    resource, profiles = _unpack(payload, resource_type)
    profiles += request.query_params.getlist("profile")
    for canonical in profiles:
        if registry().find(canonical) is None:
            raise FhirError(400, "not-supported", f"Unknown profile '{canonical[:200]}'")
    issues = await run_in_threadpool(validation_issues, resource, profiles)
    if not issues:
        checked = ", ".join(profiles + _claimed(resource)) or "FHIR R4"
        issues = [Issue("informational", f"valid (checked: {checked})", severity="information")]
    return respond(operation_outcome(issues), view_of(request), 200)


def _unpack(payload: Any, resource_type: str) -> tuple[dict[str, Any], list[str]]:
    """The resource to validate and the profiles named in a Parameters body."""
    if not isinstance(payload, dict) or not isinstance(payload.get("resourceType"), str):
        raise FhirError(400, "structure", "The body is not a FHIR resource")
    profiles: list[str] = []
    resource = payload
    if payload["resourceType"] == "Parameters" and resource_type != "Parameters":
        found = None
        for parameter in payload.get("parameter") or []:
            if not isinstance(parameter, dict):
                continue
            if parameter.get("name") == "resource":
                found = parameter.get("resource")
            elif parameter.get("name") == "profile":
                value = parameter.get("valueUri") or parameter.get("valueCanonical")
                if not isinstance(value, str) or not value:
                    raise FhirError(
                        400,
                        "value",
                        "The 'profile' parameter needs a valueUri or valueCanonical",
                        ("Parameters.parameter",),
                    )
                profiles.append(value)
        if not isinstance(found, dict) or not isinstance(found.get("resourceType"), str):
            raise FhirError(400, "required", "Parameters has no 'resource' to validate")
        resource = found
    if resource["resourceType"] != resource_type:
        raise FhirError(
            400,
            "invalid",
            f"Resource type '{resource['resourceType']}' does not match the URL's type "
            f"'{resource_type}'",
            ("resourceType",),
        )
    return resource, profiles


def validation_issues(resource: dict[str, Any], profiles: list[str]) -> list[Issue]:
    """Every error of ``resource``: R4 first, then the claimed and the requested profiles."""
    try:
        validate_resource(_without_profiles(resource))
    except FhirError as exc:
        return exc.issues
    return registry().validate(resource, _claimed(resource) + profiles)


def _claimed(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    claimed = meta.get("profile") if isinstance(meta, dict) else None
    if not isinstance(claimed, list):
        return []
    return [c for c in claimed if isinstance(c, str) and registry().find(c) is not None]


def _without_profiles(resource: dict[str, Any]) -> dict[str, Any]:
    """A shallow copy whose ``meta`` claims nothing, for the R4-only part of validation."""
    meta = resource.get("meta")
    if not isinstance(meta, dict) or "profile" not in meta:
        return resource
    rest = {k: v for k, v in meta.items() if k != "profile"}
    copy = {k: v for k, v in resource.items() if k != "meta"}
    if rest:
        copy["meta"] = rest
    return copy


# -------------------------------------------------------------------------------- pages


@page("/profiles")
async def profiles_root(request: Request) -> Response:
    return RedirectResponse("/profiles/", status_code=308)


@page("/profiles/")
async def profiles_index(request: Request) -> Response:
    return HTMLResponse(_read("index.html"))


@page("/profiles/{name}")
async def profiles_file(request: Request, name: str) -> Response:
    return _file(name)


@page("/profiles/examples/{name}")
async def profiles_example(request: Request, name: str) -> Response:
    return _file(f"examples/{name}")


def _file(name: str) -> Response:
    if not _FILE.match(name.rsplit("/", 1)[-1]) or not (PROFILES_DIR / name).is_file():
        raise FhirError(404, "not-found", f"No file /profiles/{name[:100]}")
    if name.endswith(".html"):
        return HTMLResponse(_read(name))
    return Response(_read(name), media_type="application/fhir+json;charset=utf-8")


@cache
def _read(name: str) -> bytes:
    return (PROFILES_DIR / name).read_bytes()

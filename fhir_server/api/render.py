"""Turning stored bytes and service results into response bodies.

The fast path serves stored JSON bytes as they are (and embeds them in Bundles with
``jsonio.RawJson``); parsing happens only for XML, ``_pretty``, ``_summary`` or ``_elements``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from fhir_server.api.http import Format, response_format
from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError, Issue, operation_outcome

_SUMMARY_MODES = frozenset({"true", "false", "text", "data", "count"})


@dataclass(frozen=True, slots=True)
class View:
    """How the client asked to see resources: format, pretty printing, subsetting."""

    fmt: Format
    pretty: bool
    summary: str | None
    elements: tuple[str, ...]

    @property
    def raw(self) -> bool:
        """True when stored JSON bytes can be sent unchanged."""
        return self.fmt.kind == "json" and not self.pretty and not self.subsetting

    @property
    def subsetting(self) -> bool:
        return bool(self.elements) or self.summary not in (None, "false")


def view_of(request: Request) -> View:
    params = request.query_params
    summary = params.get("_summary")
    if summary is not None and summary not in _SUMMARY_MODES:
        raise FhirError(400, "value", f"Invalid _summary value '{summary[:40]}'", ("_summary",))
    elements = tuple(
        e.strip() for e in ",".join(params.getlist("_elements")).split(",") if e.strip()
    )
    pretty = params.get("_pretty", "").lower() == "true"
    return View(response_format(request), pretty, summary, elements)


def _subset(resource: dict[str, Any], view: View) -> dict[str, Any]:
    from fhir_server.fhir.structure import apply_elements, apply_summary

    if view.summary not in (None, "false", "count"):
        return apply_summary(resource, view.summary)
    if view.elements:
        return apply_elements(resource, view.elements)
    return resource


def resource_value(content: bytes, view: View) -> Any:
    """A stored resource ready to embed in a JSON document for this view."""
    if not view.subsetting:
        return jsonio.RawJson(content)
    return _subset(jsonio.loads_trusted(content), view)


def body(value: Any, view: View) -> bytes:
    """Serialize a resource (dict, possibly holding RawJson) in the view's format."""
    if view.fmt.kind == "xml":
        from fhir_server.fhir.xml import resource_to_xml

        return resource_to_xml(_materialize(value), pretty=view.pretty)
    if view.pretty:
        return jsonio.dumps(_materialize(value), pretty=True)
    return jsonio.dumps(value)


def _materialize(value: Any) -> Any:
    """Replace embedded raw JSON by parsed values (needed for XML and pretty output)."""
    if isinstance(value, jsonio.RawJson):
        return jsonio.loads_trusted(value.data)
    if isinstance(value, dict):
        return {k: _materialize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_materialize(v) for v in value]
    return value


def resource_body(content: bytes, view: View) -> bytes:
    if view.raw:
        return content
    return body(resource_value(content, view), view)


def media_type(view: View) -> str:
    return f"{view.fmt.media_type};charset=utf-8"


def respond(
    value: Any, view: View, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(body(value, view), status, headers=headers, media_type=media_type(view))


def outcome_response(
    request: Request, status: int, issues: list[Issue], headers: dict[str, str] | None = None
) -> Response:
    """OperationOutcome in the client's format, or JSON when its format itself is the problem."""
    try:
        view = view_of(request)
    except FhirError:
        view = View(Format("json", "application/fhir+json"), False, None, ())
    view = View(view.fmt, view.pretty, None, ())
    return respond(operation_outcome(issues), view, status, headers)

"""HTTP details of the FHIR RESTful API: formats, Prefer, ETags, body limits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.requests import Request

from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError


@dataclass(frozen=True, slots=True)
class Format:
    kind: str  # "json" | "xml"
    media_type: str


JSON = Format("json", "application/fhir+json")
XML = Format("xml", "application/fhir+xml")

_FORMAT_ALIASES: dict[str, Format] = {
    "json": JSON,
    "application/fhir+json": JSON,
    "application/json": Format("json", "application/json"),
    "application/json+fhir": JSON,
    "xml": XML,
    "application/fhir+xml": XML,
    "application/xml": Format("xml", "application/xml"),
    "application/xml+fhir": XML,
    "text/xml": Format("xml", "text/xml"),
}


def _media(value: str) -> tuple[str, dict[str, str]]:
    main, *params = value.split(";")
    parsed = {}
    for p in params:
        key, _, val = p.strip().partition("=")
        parsed[key.lower()] = val.strip().strip('"')
    return main.strip().lower(), parsed


def response_format(request: Request) -> Format:
    """``_format`` wins over ``Accept``; nothing acceptable is a 406."""
    explicit = request.query_params.get("_format")
    if explicit:
        found = _FORMAT_ALIASES.get(explicit.strip().lower().replace(" ", "+"))
        if found is None:
            raise FhirError(406, "not-supported", f"Unsupported _format '{explicit[:60]}'")
        return found
    accept = request.headers.get("accept")
    if not accept:
        return JSON
    ranked = []
    for index, item in enumerate(accept.split(",")):
        media, params = _media(item)
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0:
            ranked.append((-q, index, media))
    for _, _, media in sorted(ranked):
        if media in _FORMAT_ALIASES:
            return _FORMAT_ALIASES[media]
        if media in ("*/*", "application/*", "text/html", "application/fhir+*"):
            return JSON
    raise FhirError(
        406,
        "not-supported",
        f"None of the accepted media types ({accept[:120]}) can be produced; "
        "use application/fhir+json or application/fhir+xml",
    )


def body_format(request: Request, allowed: tuple[str, ...] = ("json", "xml")) -> Format:
    content_type = request.headers.get("content-type")
    if not content_type:
        return JSON
    media, params = _media(content_type)
    charset = params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        raise FhirError(415, "not-supported", f"Unsupported charset '{charset}'; use UTF-8")
    found = _FORMAT_ALIASES.get(media)
    if found is None or found.kind not in allowed:
        raise FhirError(415, "not-supported", f"Unsupported Content-Type '{media[:80]}'")
    return found


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise FhirError(413, "too-long", f"Request body exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FhirError(413, "too-long", f"Request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_resource(body: bytes, fmt: Format) -> Any:
    if not body.strip():
        raise FhirError(400, "required", "The request has no body")
    if fmt.kind == "xml":
        from fhir_server.fhir.xml import XmlFormatError, xml_to_resource

        try:
            resource = xml_to_resource(body)
            jsonio.check_depth(resource)
            return resource
        except XmlFormatError as exc:
            where = (exc.expression,) if exc.expression else ()
            raise FhirError(400, "structure", exc.message, where) from exc
    return jsonio.loads(body)


def prefer(request: Request, key: str) -> str | None:
    """One token of the Prefer header (RFC 7240), e.g. ``return`` or ``handling``."""
    header = request.headers.get("prefer")
    if not header:
        return None
    for part in header.split(","):
        for token in part.split(";"):
            name, _, value = token.strip().partition("=")
            if name.strip().lower() == key:
                return value.strip().strip('"').lower()
    return None


_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


def parse_etag(value: str | None, header: str) -> int | None:
    if value is None:
        return None
    m = _ETAG.match(value)
    if not m:
        raise FhirError(400, "value", f"Malformed {header} header '{value[:60]}': expected W/\"n\"")
    return int(m.group(1))


def etag(version_id: int) -> str:
    return f'W/"{version_id}"'


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(value: datetime) -> str:
    """RFC 7231 IMF-fixdate (``Wed, 25 Nov 2026 08:00:00 GMT``), without locale lookups."""
    t = value.astimezone(UTC)
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT"
    )


def parse_http_date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None

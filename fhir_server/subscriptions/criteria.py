"""What a Subscription asks for, read and checked once: criteria, endpoint, payload, headers.

Criteria are search URLs (``Observation?code=…``) run through the search service itself, so a
subscription matches exactly what a search with the same URL would return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import Connection

from fhir_server.access.policy import Access
from fhir_server.fhir.outcomes import FhirError
from fhir_server.service.search import SearchService

#: Payload types this server sends (absent payload: an empty notification).
FULL = "application/fhir+json"
PAYLOADS = frozenset({FULL, "application/json"})
#: Search parameters that shape result pages, not matches: meaningless in criteria.
_RESULT_PARAMS = ("_count", "_sort", "_include", "_revinclude", "_summary", "_elements")


@dataclass(frozen=True, slots=True)
class Spec:
    """One Subscription as the matcher and the worker need it."""

    id: str
    resource_type: str
    pairs: tuple[tuple[str, str], ...]
    endpoint: str
    payload: str | None
    headers: tuple[tuple[str, str], ...]
    #: The owning client's row-level access: it is notified only of what it may read.
    access: Access | None = None


def _invalid(message: str, where: str) -> FhirError:
    return FhirError(422, "processing", message, (where,))


def split_criteria(criteria: Any) -> tuple[str, list[tuple[str, str]]]:
    """``Type?query`` → (type, pairs); 422 for anything else."""
    if not isinstance(criteria, str) or not criteria.strip():
        raise _invalid("Subscription.criteria is required", "Subscription.criteria")
    resource_type, _, query = criteria.strip().partition("?")
    if "/" in resource_type or not resource_type:
        raise _invalid(
            "Subscription.criteria must be 'Type?params' (no base URL)", "Subscription.criteria"
        )
    pairs = parse_qsl(query, keep_blank_values=True)
    for name, _ in pairs:
        if name.split(":")[0] in _RESULT_PARAMS:
            raise _invalid(f"'{name}' cannot be used in criteria", "Subscription.criteria")
    return resource_type, pairs


def parse_headers(headers: Any) -> tuple[tuple[str, str], ...]:
    """``channel.header`` strings ``Name: value``; 422 when one has no name."""
    out = []
    for text in headers or ():
        name, sep, value = str(text).partition(":")
        if not sep or not name.strip() or any(c in name for c in " \r\n") or "\n" in value:
            raise _invalid(
                f"Subscription.channel.header '{str(text)[:80]}' is not 'Name: value'",
                "Subscription.channel.header",
            )
        try:
            (name + value).encode("latin-1")
        except UnicodeEncodeError:
            raise _invalid(
                f"Subscription.channel.header '{str(text)[:80]}' is not sendable: HTTP header "
                "values are ISO-8859-1",
                "Subscription.channel.header",
            ) from None
        out.append((name.strip(), value.strip()))
    return tuple(out)


def read_spec(doc: dict[str, Any]) -> Spec:
    """The parts of a Subscription the server acts on; 422 for what it cannot act on."""
    resource_type, pairs = split_criteria(doc.get("criteria"))
    channel = doc.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise _invalid(
            f"Subscription.channel.type '{channel.get('type')}' is not supported (rest-hook only)",
            "Subscription.channel.type",
        )
    endpoint = str(channel.get("endpoint") or "")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _invalid(
            "Subscription.channel.endpoint must be an http(s) URL", "Subscription.channel.endpoint"
        )
    payload = channel.get("payload")
    if payload is not None and payload not in PAYLOADS:
        raise _invalid(
            f"Subscription.channel.payload '{payload}' is not supported",
            "Subscription.channel.payload",
        )
    headers = parse_headers(channel.get("header"))
    return Spec(str(doc["id"]), resource_type, tuple(pairs), endpoint, payload, headers)


def check_criteria(search: SearchService, conn: Connection, spec: Spec) -> None:
    """Run the criteria once (on no resource): unknown types/parameters or bad values → 422."""
    try:
        search.search([spec.resource_type], _restricted(spec.pairs, "-"), strict=True, conn=conn)
    except FhirError as exc:
        raise _invalid(
            f"Subscription.criteria cannot be searched: {exc.diagnostics}", "Subscription.criteria"
        ) from exc


def matches(search: SearchService, conn: Connection, spec: Spec, resource_id: str) -> bool:
    """Whether the resource, as written in this transaction, meets the criteria (and the
    owning client may read it)."""
    if not spec.pairs and spec.access is None:
        return True
    found = search.search(
        [spec.resource_type],
        _restricted(spec.pairs, resource_id),
        strict=True,
        conn=conn,
        access=spec.access,
    )
    return bool(found.matches)


def _restricted(pairs: Sequence[tuple[str, str]], resource_id: str) -> list[tuple[str, str]]:
    return [*pairs, ("_id", resource_id), ("_count", "1"), ("_total", "none")]

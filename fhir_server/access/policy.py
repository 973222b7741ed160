"""Who a request is restricted to: an ``Access`` built from the authenticated principal.

``None`` means unrestricted (authorization off, an administrator, or the server's own
rules and workers). Scopes decide *which interactions* a client may use
(``fhir_server/auth/policy.py``); an ``Access`` decides *which resources* they reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_server.access.rules import Rules, rules


@dataclass(frozen=True)
class Access:
    """A restricted client: its id (owner of its Subscriptions), kind and the attribute its
    kind's rule needs (IK, team id, organization id); ``value`` None reaches no case."""

    client_id: str
    kind: str
    value: str | None


def _attribute(kind: str, r: Rules) -> str | None:
    return {"insurer": r.insurer_attribute, "team": r.team_attribute, "ehr": r.ehr_attribute}.get(
        kind
    )


def restrict(client_id: str, kind: str, attributes: dict[str, str]) -> Access | None:
    """The Access of a client of ``kind`` (None for the unrestricted kinds)."""
    r = rules()
    if kind in r.unrestricted_kinds:
        return None
    attribute = _attribute(kind, r)
    value = attributes.get(attribute) if attribute else None
    return Access(client_id, kind, value or None)


def access_of(principal: Any) -> Access | None:
    """The Access of ``request.state.principal`` (None when authorization is off)."""
    if principal is None:
        return None
    return restrict(principal.client_id, principal.kind, dict(principal.attributes))

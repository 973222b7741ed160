"""The AuditEvent (R4) of one HTTP request, shaped after IHE BALP's RESTful events.

BALP: type ``rest``, subtype the restful-interaction, the client as requestor agent
(``110153`` Source Role ID) with its network address, this server as the destination agent
(``110152``) and as ``source.observer``, the resources as entities (role ``4`` domain
resource) and a search's query as an entity with role ``24`` and ``query`` in base64.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_server.audit.classify import Interaction
from fhir_server.fhir import jsonio
from fhir_server.service.clock import instant
from fhir_server.storage.audit import AuditRow

EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
#: Identifier system of client ids (the ``client_id`` of the authorization server).
CLIENT_SYSTEM = "urn:ivz:client"
SERVER_NAME = "ivz-bridge"


@dataclass(frozen=True, slots=True)
class Who:
    """The requesting client: its id and kind ("anonymous" when authorization is off)."""

    client_id: str
    kind: str | None
    address: str | None


def outcome_code(status: int) -> str:
    """HTTP status → AuditEvent.outcome: 0 success, 4 minor (4xx), 8 serious (5xx), 12 none."""
    if 100 <= status < 400:
        return "0"
    if 400 <= status < 500:
        return "4"
    if 500 <= status < 600:
        return "8"
    return "12"


def build(
    interaction: Interaction,
    who: Who,
    status: int,
    started: datetime,
    recorded: datetime,
    method: str,
    target: str,
    server_url: str,
) -> AuditRow:
    """The stored row (indexed columns plus JSON) of one request's AuditEvent."""
    event_id = str(uuid.uuid4())
    outcome = outcome_code(status)
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {"system": EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": INTERACTION, "code": interaction.subtype}],
        "action": interaction.action,
        "period": {"start": instant(started), "end": instant(recorded)},
        "recorded": instant(recorded),
        "outcome": outcome,
        "outcomeDesc": f"HTTP {status} for {method} {target}"[:1000],
        "agent": [_client(who), _server(server_url)],
        "source": {
            "site": SERVER_NAME,
            "observer": {"display": f"{SERVER_NAME} FHIR server"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    entities = [_resource(ref) for ref in interaction.references]
    if interaction.query is not None:
        entities.append(_query(interaction, target))
    elif interaction.detail is not None:
        entities.append({"type": _system_object(), "description": interaction.detail})
    if entities:
        event["entity"] = entities
    return AuditRow(
        event_id=event_id,
        recorded=recorded,
        client=who.client_id,
        subtype=interaction.subtype,
        action=interaction.action,
        outcome=outcome,
        status=status,
        references=tuple(r.split("/_history/")[0] for r in interaction.references),
        content=jsonio.dumps(event),
    )


def _client(who: Who) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {
            "identifier": {"system": CLIENT_SYSTEM, "value": who.client_id},
            "display": f"{who.client_id} ({who.kind})" if who.kind else who.client_id,
        },
        "requestor": True,
    }
    if who.address:
        agent["network"] = {"address": who.address, "type": "2"}  # 2 = IP address
    return agent


def _server(server_url: str) -> dict[str, Any]:
    return {
        "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
        "who": {"display": SERVER_NAME},
        "requestor": False,
        "network": {"address": server_url, "type": "5"},  # 5 = URI
    }


def _system_object() -> dict[str, str]:
    return {"system": ENTITY_TYPE, "code": "2", "display": "System Object"}


def _resource(reference: str) -> dict[str, Any]:
    return {
        "what": {"reference": reference},
        "type": _system_object(),
        "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
    }


def _query(interaction: Interaction, target: str) -> dict[str, Any]:
    text = interaction.query or ""
    return {
        "type": _system_object(),
        "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
        "description": target[:1000],
        "query": base64.b64encode(text.encode()).decode("ascii"),
    }

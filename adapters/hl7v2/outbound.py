"""Queue the verdict for the clinics that speak HL7 v2 (docs/hl7v2-outbound.md).

An after-hook on Observation (registered with the pathway's rules, so every write path runs
it: ``$verdict``, ``$amend-verdict``, REST, bundles): when a verdict version is written, each
receiver with an active MLLP ``Endpoint`` is owed one ORU^R01, inserted into ``hl7_outbox`` in
the same transaction. The message is built now, from the data as of this version, and stored
as bytes with its MSH-10; the sender (``adapters/hl7v2/sender.py``) only transmits it.

Receivers (each Endpoint once, the first source naming it decides MSH-6):
the team the referral is booked with (the counting Appointment's HealthcareService, then its
``providedBy`` Organization), the deciding team (the verdict's performer Organization) and the
referring Organization (the referral's ``requester``), each through its ``endpoint`` list.
An Endpoint counts when it is ``active``, its connectionType is
``endpoint-connection-type#hl7v2-mllp`` and its address is ``mllp://host:port``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from adapters.hl7v2 import oru
from fhir_server.fhir.outcomes import FhirError
from fhir_server.logging import get_logger
from fhir_server.pathway.program import TEAM_SYSTEM
from fhir_server.pathway.view import (
    Case,
    Doc,
    current_appointment,
    is_verdict,
    load_case,
    load_referral,
    references,
    team_service_id,
)
from fhir_server.service import hl7_outbox
from fhir_server.service.hl7_outbox import NewMessage
from fhir_server.service.hooks import Hooks
from fhir_server.service.resources import Unit

log = get_logger(__name__)

CONNECTION_TYPES = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
MLLP = "hl7v2-mllp"
IK_SYSTEM = "http://fhir.de/sid/arge-ik/iknr"
#: ``Endpoint.header`` entries that set MSH-5/MSH-6 (``"MSH-5: LABSYS"``).
HEADER_FIELDS = ("MSH-5", "MSH-6")


@dataclass(frozen=True, slots=True)
class Target:
    """One receiving system: its Endpoint and how the message addresses it."""

    endpoint_id: str
    address: str
    receiver: oru.Receiver


def parse_address(address: Any) -> tuple[str, int] | None:
    """(host, port) of ``mllp://host:port``; None for anything else."""
    if not isinstance(address, str):
        return None
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() != "mllp" or not parts.hostname or port is None:
        return None
    return parts.hostname, port


def is_mllp(endpoint: dict[str, Any]) -> bool:
    kind = endpoint.get("connectionType")
    return (
        isinstance(kind, dict)
        and kind.get("system") == CONNECTION_TYPES
        and kind.get("code") == MLLP
        and parse_address(endpoint.get("address")) is not None
    )


def headers(endpoint: dict[str, Any]) -> dict[str, str]:
    """``MSH-5``/``MSH-6`` values given as ``Endpoint.header`` entries."""
    found: dict[str, str] = {}
    for entry in endpoint.get("header") or []:
        if isinstance(entry, str) and ":" in entry:
            name, value = entry.split(":", 1)
            if name.strip().upper() in HEADER_FIELDS:
                found[name.strip().upper()] = value.strip()
    return found


def facility(owner: dict[str, Any]) -> str:
    """MSH-6 for a receiver named by ``owner``: its team number (upper case, as the clinics
    send it in MSH-4), else its IK number, else its id."""
    for system in (TEAM_SYSTEM, IK_SYSTEM):
        for ident in owner.get("identifier") or []:
            if isinstance(ident, dict) and ident.get("system") == system and ident.get("value"):
                value = str(ident["value"])
                return value.upper() if system == TEAM_SYSTEM else value
    return str(owner.get("id", ""))


def _doc(unit: Unit, resource_type: str, resource_id: str) -> Doc | None:
    try:
        return Doc.of(unit.read(resource_type, resource_id))
    except FhirError:
        return None


def _owners(unit: Unit, case: Case, verdict: dict[str, Any]) -> list[Doc]:
    """The resources whose ``endpoint`` lists name the receivers, in order of precedence:
    the booked team's HealthcareService and its Organization, the deciding team, the
    referring Organization (each once)."""
    found: dict[tuple[str, str], Doc | None] = {}
    booked = current_appointment(a.res for a in case.appointments)
    service_id = team_service_id(booked) if booked is not None else None
    organizations: list[str] = []
    if service_id is not None:
        service = found[("HealthcareService", service_id)] = _doc(
            unit, "HealthcareService", service_id
        )
        if service is not None:
            organizations += references(service.res.get("providedBy"), "Organization")
    organizations += references(verdict.get("performer"), "Organization")
    organizations += references(case.referral.res.get("requester"), "Organization")
    for org in organizations:
        if ("Organization", org) not in found:
            found[("Organization", org)] = _doc(unit, "Organization", org)
    return [doc for doc in found.values() if doc is not None]


def targets(unit: Unit, owners: list[Doc]) -> list[Target]:
    """Each active MLLP Endpoint named by the owners, once."""
    found: dict[str, Target] = {}
    for owner in owners:
        for endpoint_id in references(owner.res.get("endpoint"), "Endpoint"):
            if endpoint_id in found:
                continue
            endpoint = _doc(unit, "Endpoint", endpoint_id)
            if endpoint is None or endpoint.res.get("status") != "active":
                continue
            if not is_mllp(endpoint.res):
                continue
            given = headers(endpoint.res)
            receiver = oru.Receiver(
                given.get("MSH-5", str(endpoint.res.get("name") or "")),
                given.get("MSH-6", facility(owner.res)),
            )
            found[endpoint_id] = Target(endpoint_id, str(endpoint.res["address"]), receiver)
    return list(found.values())


def _any_mllp_endpoint(unit: Unit) -> bool:
    """One index probe, so that verdicts cost nothing more where no clinic is configured."""
    found = unit.find(
        ["Endpoint"],
        [("connection-type", f"{CONNECTION_TYPES}|{MLLP}"), ("status", "active"), ("_count", "1")],
    )
    return bool(found.matches)


def _care_plan(case: Case, verdict_id: str) -> dict[str, Any] | None:
    """The newest plan supported by this verdict (an active one first)."""
    plans = [
        p
        for p in case.care_plans
        if verdict_id in references(p.res.get("supportingInfo"), "Observation")
    ]
    plans.sort(key=lambda p: (p.res.get("status") == "active", p.stored.last_updated))
    return plans[-1].res if plans else None


def queue_verdict(unit: Unit, doc: dict[str, Any], before: dict[str, Any] | None) -> None:
    """After-hook on Observation: owe an ORU^R01 per v2 receiver of this verdict version."""
    status = oru.RESULT_STATUS.get(str(doc.get("status")))
    if status is None or not is_verdict(doc) or not _any_mllp_endpoint(unit):
        return
    referral_ids = references(doc.get("basedOn"), "ServiceRequest")
    if not referral_ids:
        return
    try:
        case = load_case(unit, load_referral(unit, referral_ids[0]))
    except FhirError:
        return  # not a second-opinion referral (or gone): no clinic waits for it
    found = targets(unit, _owners(unit, case, doc))
    if not found:
        return
    performers = references(doc.get("performer"), "Organization")
    performer = _doc(unit, "Organization", performers[0]) if performers else None
    facts = oru.VerdictFacts(
        verdict=doc,
        referral=case.referral.res,
        patient=case.patient.res if case.patient else None,
        appointment=current_appointment(a.res for a in case.appointments),
        care_plan=_care_plan(case, doc["id"]),
        surgery=case.surgery.res if case.surgery else None,
        performer=performer.res if performer else None,
    )
    version = int(doc["meta"]["versionId"])
    when = unit.clock()
    messages = []
    for target in found:
        result = status
        if status == "F" and hl7_outbox.owed_before(
            unit, "Observation", doc["id"], target.endpoint_id
        ):
            result = "C"  # a later version of a result already sent is a correction
        control = oru.control_id("Observation", doc["id"], version, target.endpoint_id)
        messages.append(
            NewMessage(
                "Observation",
                doc["id"],
                version,
                target.endpoint_id,
                target.address,
                "ORU^R01",
                control,
                oru.build(facts, target.receiver, control, when, result),
            )
        )
    hl7_outbox.enqueue(unit, messages, when)  # in the verdict's transaction
    log.info(
        "verdict queued for HL7 v2 receivers",
        verdict=f"Observation/{doc['id']}/_history/{version}",
        endpoints=[t.endpoint_id for t in found],
    )


def register(hooks: Hooks) -> None:
    """Queue an ORU^R01 whenever a verdict version is written (docs/hl7v2-outbound.md)."""
    hooks.on_after("Observation", queue_verdict)

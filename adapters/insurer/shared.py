"""One state per shared resource and file: Patients, Organizations, Practitioners.

Several rows of one file may name the same patient (KVNR), insurer or hospital (IK) or surgeon
(LANR) with different details. Applying rows one after the other would write each variant in
turn, and a re-import would write them all again; instead the most recent referral (latest
received-at, then the later row) decides, and rows that disagree are reported as warnings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapters.insurer import resources
from adapters.insurer.layout import Layout, Target
from adapters.insurer.referral import Referral
from adapters.insurer.report import RowIssue


@dataclass
class Shared:
    """Content of each shared resource, keyed by its identity."""

    content: dict[resources.Identity, dict[str, Any]] = field(default_factory=dict)
    warnings: list[RowIssue] = field(default_factory=list)

    def get(self, identity: resources.Identity) -> dict[str, Any]:
        return self.content[identity]


def decide(referrals: Iterable[Referral], layout: Layout) -> Shared:
    rows = list(referrals)
    insurer_iks = {r.insurer_ik for r in rows}
    candidates: dict[resources.Identity, list[tuple[Referral, dict[str, Any], Target]]] = {}

    def offer(
        identity: resources.Identity, r: Referral, content: dict[str, Any], t: Target
    ) -> None:
        candidates.setdefault(identity, []).append((r, content, t))

    built: dict[tuple[str | bool | None, ...], dict[str, Any]] = {}

    def organization(ik: str, name: str | None) -> dict[str, Any]:
        key = ("Organization", ik, name)
        if key not in built:
            built[key] = resources.organization(ik, name, ik in insurer_iks)
        return built[key]

    def practitioner(lanr: str, name: str | None) -> dict[str, Any]:
        key = ("Practitioner", lanr, name)
        if key not in built:
            built[key] = resources.practitioner(lanr, name)
        return built[key]

    for r in rows:
        offer(resources.patient_identity(r.kvnr), r, resources.patient(r), Target.KVNR)
        insurer = organization(r.insurer_ik, r.insurer_name)
        offer(resources.organization_identity(r.insurer_ik), r, insurer, Target.INSURER_NAME)
        if r.hospital_ik:
            hospital = organization(r.hospital_ik, r.hospital_name)
            offer(resources.organization_identity(r.hospital_ik), r, hospital, Target.HOSPITAL_NAME)
        if r.surgeon_lanr:
            surgeon = practitioner(r.surgeon_lanr, r.surgeon_name)
            offer(resources.practitioner_identity(r.surgeon_lanr), r, surgeon, Target.SURGEON_NAME)
    shared = Shared()
    for identity, offers in candidates.items():
        best = max(offers, key=_rank)
        shared.content[identity] = best[1]
        for r, content, target in offers:
            if content != best[1] and _rank((r, content, target))[0]:
                shared.warnings.append(_differs(r, best[0], identity, target, layout))
    shared.warnings.sort(key=lambda w: w.row)
    return shared


def _rank(offer: tuple[Referral, dict[str, Any], Target]) -> tuple[bool, datetime, int]:
    """A row that names an organisation or surgeon beats one that does not; then the latest."""
    r, content, _ = offer
    says_enough = content["resourceType"] == "Patient" or "name" in content
    return says_enough, r.received_at, r.row


def _differs(
    r: Referral, winner: Referral, identity: resources.Identity, target: Target, layout: Layout
) -> RowIssue:
    column = layout.column_of(target) or target.value
    what = {"Patient": "patient data", "Organization": "name", "Practitioner": "name"}
    return RowIssue(
        r.row,
        r.line,
        r.referral_id,
        column,
        identity.value,
        f"{what[identity.resource_type]} for {identity.system}|{identity.value} differs from "
        f"row {winner.row} (the most recent referral), whose data is used",
    )

"""A digest of everything a row's resources are made of, kept on its referral (``meta.tag``),
so that re-importing an unchanged row costs one look-up instead of a comparison."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson

from adapters.insurer import resources
from adapters.insurer.layout import Layout
from adapters.insurer.referral import Referral
from adapters.insurer.shared import Shared

#: meta.tag system of the digest of the row a referral was written from.
DIGEST_SYSTEM = "https://ivz-bridge.example/CodeSystem/insurer-row-digest"

#: Part of every row digest: bump it when the resources a row becomes change shape, so that
#: the next import compares every row instead of trusting digests of the old mapping.
MAPPING_VERSION = 2


def row_digest(r: Referral, shared: Shared, layout: Layout) -> str:
    """Everything a row's resources are made of: its fields (not its position in the file),
    the content chosen for the shared resources it names, and the code-version policy."""
    payload = (
        MAPPING_VERSION,
        dataclasses.replace(r, row=0, line=None),
        [shared.get(i) for i in shared_identities(r)],
        layout.codes.icd10gm,
        layout.codes.ops,
    )
    raw = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def shared_identities(r: Referral) -> list[resources.Identity]:
    """Patient, insurer, hospital and surgeon, as far as the row names them."""
    found = [resources.patient_identity(r.kvnr), resources.organization_identity(r.insurer_ik)]
    if r.hospital_ik:
        found.append(resources.organization_identity(r.hospital_ik))
    if r.surgeon_lanr:
        found.append(resources.practitioner_identity(r.surgeon_lanr))
    return found


def with_digest(meta: dict[str, Any], digest: str | None) -> dict[str, Any]:
    """``meta`` with the digest tag replaced (other tags kept)."""
    if digest is None:
        return meta
    tags = [t for t in meta.get("tag", []) if t.get("system") != DIGEST_SYSTEM]
    return {**meta, "tag": [*tags, {"system": DIGEST_SYSTEM, "code": digest}]}

"""Deterministic resource ids: the same source identifiers always give the same id.

An id is SHA-256 over the resource type and the identifying parts, shaped as a UUID (version
8, "custom") so that it is a valid FHIR id and ``urn:uuid:`` fullUrl at once. Re-sending a
message therefore PUTs the same resources again, and an update (A08 after A04, S13 after S12,
a corrected ORU) lands on the resource the first message made.

A Patient with a KVNR is the exception: its id is :func:`patient_id`, the same for the HL7 v2
and insurer adapters (one Patient per person; ``docs/hl7v2-intake.md``, "Patient identity").
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

_SEPARATOR = "\x1e"


def make_id(resource_type: str, parts: Sequence[str]) -> str:
    """The id of a resource identified by ``parts`` (the same parts always give the same id)."""
    digest = bytearray(
        hashlib.sha256(_SEPARATOR.join([resource_type, *parts]).encode("utf-8")).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: The KVNR (Krankenversichertennummer), the program's trusted patient identifier.
KVNR_SYSTEM = "http://fhir.de/sid/gkv/kvid-10"
#: UUIDv5 namespace of the program's identifier-derived ids (first used by the insurer adapter,
#: so the Patients it created keep their ids).
_PROGRAM_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://ivz-bridge.example/adapters/insurer")


def identifier_id(resource_type: str, system: str, value: str) -> str:
    """The id of a resource known by one business identifier (UUIDv5 of type, system, value).

    Every adapter that creates a resource for such an identifier uses this id, so two sources
    naming the same identifier land on the same resource, and two concurrent first writes
    collide on the id (the store's unique key) instead of making two resources.
    """
    return str(uuid.uuid5(_PROGRAM_NAMESPACE, "|".join((resource_type, system, value))))


def patient_id(kvnr: str) -> str:
    """The id of the Patient with this KVNR, whichever adapter creates it first."""
    return identifier_id("Patient", KVNR_SYSTEM, kvnr)

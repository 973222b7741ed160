"""Deterministic resource ids: the same source identifiers always give the same id.

An id is SHA-256 over the resource type and the identifying parts, shaped as a UUID (version
8, "custom") so that it is a valid FHIR id and ``urn:uuid:`` fullUrl at once. Re-sending a
message therefore PUTs the same resources again, and an update (A08 after A04, S13 after S12,
a corrected ORU) lands on the resource the first message made.
"""

from __future__ import annotations

import hashlib
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

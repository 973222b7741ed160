"""Sample files made unique per test, and reads through the service layer."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from adapters.insurer.validators import kvnr_check_digit
from fhir_server.fhir import jsonio
from fhir_server.service.resources import ResourceService

SAMPLES = Path(__file__).parent / "samples"
_RANDOM = random.SystemRandom()
_KVNR = re.compile(r"\b[A-Z][0-9]{9}\b")
_CASE = re.compile(r"\b(TK-2024|TK-E|AOK)-")


def new_kvnr() -> str:
    body = f"{_RANDOM.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZ')}{_RANDOM.randrange(10**8):08d}"
    return f"{body}{kvnr_check_digit(body)}"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


class Fresh:
    """Rewrites exports with case numbers and KVNRs no other test uses (the database is
    shared by the session); the same instance renames the same way in every file."""

    def __init__(self, kvnrs: bool = True) -> None:
        self.tag = f"{_RANDOM.randrange(16**8):08X}"
        self.rename_kvnrs = kvnrs
        self.kvnrs: dict[str, str] = {}

    def __call__(self, data: bytes, encoding: str = "utf-8") -> bytes:
        text = data.decode(encoding)
        if self.rename_kvnrs:
            text = _KVNR.sub(lambda m: self.kvnrs.setdefault(m.group(0), new_kvnr()), text)
        text = _CASE.sub(lambda m: f"{m.group(1)}-{self.tag}-", text)
        return text.encode(encoding)

    def case(self, original: str) -> str:
        """The new case number of e.g. ``TK-2024-0001``."""
        prefix, _, number = original.rpartition("-")
        return f"{prefix}-{self.tag}-{number}"


def fresh(data: bytes, encoding: str = "utf-8") -> bytes:
    return Fresh()(data, encoding)


def find(service: ResourceService, resource_type: str, query: str) -> list[dict[str, Any]]:
    pairs = [*parse_qsl(query), ("_count", "100")]
    found = service.search.search([resource_type], pairs, strict=True).matches
    return [jsonio.loads_trusted(m.content) for m in found if m.content is not None]


def one(service: ResourceService, resource_type: str, query: str) -> dict[str, Any]:
    found = find(service, resource_type, query)
    assert len(found) == 1, f"{resource_type}?{query}: {len(found)} matches"
    return found[0]


def referral(service: ResourceService, ik: str, case: str) -> dict[str, Any]:
    system = f"https://ivz-bridge.example/sid/referral/{ik}"
    return one(service, "ServiceRequest", f"identifier={system}|{case}")


def case_ids(data: bytes, encoding: str = "utf-8") -> list[str]:
    return re.findall(r"\b(?:TK-2024|TK-E|AOK)-[0-9A-F]{8}-[0-9]+", data.decode(encoding))


def read(service: ResourceService, reference: str) -> dict[str, Any]:
    rtype, rid = reference.split("/")
    stored = service.read(rtype, rid)
    assert stored.content is not None
    doc: dict[str, Any] = jsonio.loads_trusted(stored.content)
    return doc

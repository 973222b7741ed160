"""One Patient per person: matching a source's Patient against the store by identifier.

Both adapters (HL7 v2 and insurer exports) meet here. A Patient is the same person when it
shares a trusted business identifier (system and value) with what a source sends: above all
the KVNR (``http://fhir.de/sid/gkv/kvid-10``), and any other identifier both carry (a clinic's
MRN). A new Patient with a KVNR gets the id :func:`fhir_server.fhir.ids.patient_id`, the same
from either adapter, so two concurrent first writes collide on the id instead of making two
Patients.

Matching runs inside the caller's unit of work through the service layer's search
(``Unit.find``), never in SQL. It never merges two stored Patients and never guesses: a
different KVNR, identifiers that name several stored Patients, or a different birth date are
an :class:`IdentityConflict` for a human to resolve.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.fhir import jsonio
from fhir_server.fhir.ids import KVNR_SYSTEM, patient_id
from fhir_server.service.resources import Unit

__all__ = [
    "KVNR_SYSTEM",
    "Found",
    "IdentityConflict",
    "candidates",
    "choose",
    "insurer_known",
    "kvnrs",
    "merge_from_clinic",
    "new_patient_id",
    "shared_keys",
]

Resource = dict[str, Any]
#: Elements the insurer is authoritative for, once it knows the Patient (see
#: :func:`insurer_known`): a clinic's message only fills them where the Patient has none.
INSURER_ELEMENTS = ("name", "birthDate", "address")
#: Lists a clinic's message adds to (entries not there yet), never removes from.
ADDITIVE = {"identifier": ("system", "value"), "telecom": ("system", "value")}


class IdentityConflict(Exception):
    """The source's Patient cannot be matched without risking two persons becoming one.

    ``element`` is ``identifier`` or ``birthDate`` (where the source should look).
    """

    def __init__(self, message: str, element: str = "identifier") -> None:
        super().__init__(message)
        self.message = message
        self.element = element


@dataclass(frozen=True)
class Found:
    """A stored Patient: id, version and content as stored (with id and meta)."""

    id: str
    version: int
    content: Resource


def kvnrs(patient: Resource) -> set[str]:
    """The KVNRs a Patient carries (a valid one has exactly one)."""
    return {
        str(i["value"])
        for i in patient.get("identifier", []) or []
        if isinstance(i, dict) and i.get("system") == KVNR_SYSTEM and i.get("value")
    }


def shared_keys(patient: Resource) -> list[tuple[str, str]]:
    """The identifiers that can match: those with both system and value, in order."""
    keys: list[tuple[str, str]] = []
    for i in patient.get("identifier", []) or []:
        if isinstance(i, dict) and i.get("system") and i.get("value"):
            key = (str(i["system"]), str(i["value"]))
            if key not in keys:
                keys.append(key)
    return keys


def new_patient_id(patient: Resource, fallback: str) -> str:
    """The id of a Patient nobody has stored yet: from its KVNR when it has one."""
    found = kvnrs(patient)
    return patient_id(next(iter(found))) if len(found) == 1 else fallback


def _escape(value: str) -> str:
    """A token search value with FHIR's escapes (``\\``, ``,``, ``|``, ``$``)."""
    for char in ("\\", ",", "|", "$"):
        value = value.replace(char, "\\" + char)
    return value


def candidates(unit: Unit, keys: Sequence[tuple[str, str]], ids: Iterable[str] = ()) -> list[Found]:
    """Stored, live Patients that carry one of ``keys`` or have one of ``ids``, each once,
    read with a row lock (they stay as read until the unit ends). Searched through the
    service layer in the unit's transaction, so it sees the unit's own writes."""
    found_ids: list[str] = []
    for system, value in keys:  # one search per identifier: each uses the token index
        query = f"{_escape(system)}|{_escape(value)}"
        pairs = [("identifier", query), ("_count", "100"), ("_total", "none")]
        for match in unit.find(["Patient"], pairs).matches:
            if match.content is None or match.id in found_ids:
                continue
            content = jsonio.loads_trusted(match.content)
            if (system, value) in shared_keys(content):  # exactly this system and value
                found_ids.append(match.id)
    for rid in ids:
        if rid not in found_ids:
            found_ids.append(rid)
    current = unit.current_many([("Patient", rid) for rid in found_ids], lock=True)
    out = []
    for rid in found_ids:
        stored = current.get(("Patient", rid))
        if stored is None or stored.deleted or stored.content is None:
            continue
        out.append(Found(rid, stored.version_id, jsonio.loads_trusted(stored.content)))
    return out


def _describe(found: Found) -> str:
    keys = shared_keys(found.content)
    shown = ", ".join(f"{s}|{v}" for s, v in keys[:3]) or "no identifier"
    return f"Patient/{found.id} ({shown})"


def choose(patient: Resource, found: Sequence[Found]) -> Found | None:
    """The one stored Patient that ``patient`` is, None for a new person; IdentityConflict
    when that cannot be said without merging two persons."""
    mine = kvnrs(patient)
    if len(mine) > 1:
        raise IdentityConflict(f"the patient carries {len(mine)} KVNRs: {', '.join(sorted(mine))}")
    for other in found:
        theirs = kvnrs(other.content)
        if mine and theirs and theirs != mine:
            raise IdentityConflict(
                f"an identifier of the patient belongs to {_describe(other)}, which has KVNR "
                f"{', '.join(sorted(theirs))}, not {next(iter(mine))}; not merged"
            )
    if len(found) > 1:
        names = "; ".join(_describe(f) for f in found[:5])
        raise IdentityConflict(
            f"the patient's identifiers name {len(found)} different stored Patients ({names}); "
            "not merged: merge or correct them first"
        )
    if not found:
        return None
    target = found[0]
    theirs_born, mine_born = target.content.get("birthDate"), patient.get("birthDate")
    if theirs_born and mine_born and theirs_born != mine_born:
        raise IdentityConflict(
            f"{_describe(target)} has birth date {theirs_born}, the patient {mine_born}; "
            "not merged: check the identifiers or correct the birth date",
            element="birthDate",
        )
    return target


def insurer_known(unit: Unit, found: Found) -> bool:
    """Whether an insurer referred this Patient: a Coverage names it as beneficiary with its
    KVNR as subscriberId (what the insurer adapter writes with every referral)."""
    mine = kvnrs(found.content)
    if not mine:
        return False
    result = unit.find(
        ["Coverage"], [("beneficiary", f"Patient/{found.id}"), ("_count", "20"), ("_total", "none")]
    )
    for match in result.matches:
        if match.content is not None:
            coverage = jsonio.loads_trusted(match.content)
            if coverage.get("subscriberId") in mine:
                return True
    return False


def _key(entry: Any, fields: tuple[str, ...]) -> Any:
    if isinstance(entry, dict) and all(entry.get(f) for f in fields):
        return tuple(entry[f] for f in fields)
    return jsonio.dumps(entry)


def _union(stored: list[Any], incoming: list[Any], fields: tuple[str, ...]) -> list[Any]:
    """Stored entries in place, then incoming ones whose key is not there yet."""
    out = list(stored)
    seen = {_key(e, fields) for e in out}
    for entry in incoming:
        key = _key(entry, fields)
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def _insurer_slot_taken(stored: list[Any], entry: Any) -> bool:
    """A home phone or home e-mail where the Patient has one already: the insurer's (its
    export has them; it replaces them on every row), so a clinic does not add a second."""
    if not isinstance(entry, dict) or entry.get("use") != "home":
        return False
    if entry.get("system") not in ("phone", "email"):
        return False
    return any(
        isinstance(t, dict) and t.get("use") == "home" and t.get("system") == entry["system"]
        for t in stored
    )


def merge_from_clinic(stored: Resource, message: Resource, insurer_knows: bool) -> Resource:
    """A clinic's Patient folded into the stored one (the rule in docs/hl7v2-intake.md):

    - identifiers and telecoms are added when not there yet (by system and value); nothing is
      removed, so the insurer's KVNR and other sources' identifiers stay; once the insurer
      knows the Patient, its home phone and home e-mail are the insurer's (a clinic's home
      phone or e-mail is only added where the Patient has none of that kind);
    - name, birthDate, address, gender: the insurer's once it knows the Patient (a message
      only fills what is missing); otherwise the clinic's message keeps them up to date;
    - other elements: the message's when it has them, else what is stored.

    Stored key order is kept, so folding the same message in again gives the same content
    (a resend stores no new version).
    """
    out = {k: v for k, v in stored.items() if k not in ("id", "meta")}
    meta = {
        k: v for k, v in (stored.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")
    }
    for key, value in message.items():
        if key in ("resourceType", "id", "meta"):
            continue
        if key in ADDITIVE:
            incoming = value
            if key == "telecom" and insurer_knows:
                incoming = [t for t in value if not _insurer_slot_taken(out.get(key) or [], t)]
            out[key] = _union(out.get(key) or [], incoming, ADDITIVE[key])
        elif key in ("gender", "_gender"):
            if not (insurer_knows and stored.get("gender")):
                out[key] = value
        elif insurer_knows and key in INSURER_ELEMENTS and out.get(key):
            continue
        else:
            out[key] = value
    clinic_gender = not (insurer_knows and stored.get("gender")) and "gender" in message
    if clinic_gender and "_gender" not in message:
        out.pop("_gender", None)  # the clinic's gender replaced, with its qualifier
    if meta:
        return {"resourceType": out["resourceType"], "meta": meta, **out}
    return out

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

Who owns which parts of the shared Patient is decided here too (:func:`merge_from_insurer`,
:func:`merge_from_clinic`; docs/insurer-adapter.md, "Merge policy"): each source replaces only
its own contributions and never erases the other's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_server.fhir import jsonio
from fhir_server.fhir.ids import KVNR_SYSTEM, patient_id
from fhir_server.pathway.program import BASE
from fhir_server.service.resources import Unit

__all__ = [
    "KVNR_SYSTEM",
    "Found",
    "IdentityConflict",
    "candidates",
    "choose",
    "covers",
    "insurer_known",
    "insurer_mark",
    "insurer_owns",
    "kvnrs",
    "merge_from_clinic",
    "merge_from_insurer",
    "new_patient_id",
    "other_birth_date",
    "shared_keys",
]

Resource = dict[str, Any]


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
    theirs_born = other_birth_date(target.content, patient)
    if theirs_born is not None:
        raise IdentityConflict(
            f"{_describe(target)} has birth date {theirs_born}, the patient "
            f"{patient['birthDate']}; "
            "not merged: check the identifiers or correct the birth date",
            element="birthDate",
        )
    return target


def covers(coverage: Resource | None, patient_ref: str, kvnrs_: set[str]) -> bool:
    """Whether ``coverage`` is an insurer's for this Patient: it names ``patient_ref`` as
    beneficiary with one of the Patient's KVNRs as subscriberId (what the insurer adapter
    writes with every referral). Such a Patient is one the insurer knows."""
    if not coverage or not kvnrs_:
        return False
    beneficiary = coverage.get("beneficiary") or {}
    return beneficiary.get("reference") == patient_ref and coverage.get("subscriberId") in kvnrs_


def insurer_known(unit: Unit, found: Found) -> bool:
    """Whether an insurer referred this Patient (:func:`covers`, searched by beneficiary)."""
    mine = kvnrs(found.content)
    if not mine:
        return False
    reference = f"Patient/{found.id}"
    result = unit.find(
        ["Coverage"], [("beneficiary", reference), ("_count", "20"), ("_total", "none")]
    )
    return any(
        match.content is not None and covers(jsonio.loads_trusted(match.content), reference, mine)
        for match in result.matches
    )


def other_birth_date(stored: Resource, incoming: Resource) -> str | None:
    """The stored birth date when the source sends another one (both known), else None.

    Such a Patient is not taken as the same person (nothing is merged), except by the insurer
    for a Patient it referred itself (:func:`covers`): then its row corrects the birth date.
    """
    theirs, mine = stored.get("birthDate"), incoming.get("birthDate")
    return str(theirs) if theirs and mine and theirs != mine else None


# -- who owns what on a shared Patient (docs/insurer-adapter.md, "Merge policy") -------------

#: Marks the addresses and telecoms an insurer export contributed, so that the insurer's next
#: row replaces exactly those and a clinic's (same ``use`` or not) stay.
SOURCE_URL = f"{BASE}/StructureDefinition/ivz-patient-source"
INSURER = "insurer"
_INSURER_MARK = {"url": SOURCE_URL, "valueCode": INSURER}
#: The repeating elements both sources write, and the fields that make two entries the same
#: (``use``, ``type``, ``period``, extensions do not).
LISTS: dict[str, tuple[str, ...]] = {
    "identifier": ("system", "value"),
    "name": ("family", "given", "prefix", "suffix", "text"),
    "address": ("line", "city", "postalCode", "district", "state"),
    "telecom": ("system", "value"),
}


def insurer_mark(entry: Resource) -> Resource:
    """An address or telecom entry marked as the insurer's contribution."""
    return {**entry, "extension": [*entry.get("extension", []), _INSURER_MARK]}


def insurer_owns(kind: str, entry: Any, insurer_knows: bool = True) -> bool:
    """Whether a stored entry of ``kind`` is the insurer's: the KVNR identifier and the
    official name (once the insurer knows the Patient), addresses and telecoms it marked."""
    if not isinstance(entry, dict):
        return False
    if kind == "identifier":
        return insurer_knows and entry.get("system") == KVNR_SYSTEM
    if kind == "name":
        return insurer_knows and entry.get("use") == "official"
    return any(
        isinstance(e, dict) and e.get("url") == SOURCE_URL and e.get("valueCode") == INSURER
        for e in entry.get("extension", []) or []
    )


def _same(kind: str, entry: Any) -> Any:
    """What makes two entries of ``kind`` the same, whoever sent them."""
    if isinstance(entry, dict):
        key = tuple(jsonio.dumps(entry.get(f)) for f in LISTS[kind])
        if any(entry.get(f) for f in LISTS[kind]):
            return key
    return jsonio.dumps(entry)


def _union(kind: str, first: list[Any], then: list[Any]) -> list[Any]:
    """``first`` in place, then the entries of ``then`` that are not there yet."""
    out = list(first)
    seen = {_same(kind, e) for e in out}
    for entry in then:
        key = _same(kind, entry)
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def _set(out: Resource, key: str, value: list[Any]) -> None:
    if value:
        out[key] = value
    else:
        out.pop(key, None)


def merge_from_insurer(stored: Resource | None, row: Resource) -> Resource:
    """An insurer row's Patient folded into the stored one (``id``/``meta`` not included):

    - birthDate, gender and ``_gender`` (gender-amtlich-de) are the row's;
    - in identifier, name, address and telecom the insurer's own entries (KVNR, official
      name, marked address and telecoms) are replaced by the row's, listed first; every other
      entry stays in place unless it is the same as one of the row's (then the insurer's wins).

    Folding the same row in again gives the same content (a re-import writes nothing).
    """
    if stored is None:
        return row
    out = dict(stored)
    for key in ("gender", "birthDate"):
        out[key] = row[key]
    if "_gender" in row:
        out["_gender"] = row["_gender"]
    else:
        out.pop("_gender", None)
    for kind in LISTS:
        others = [e for e in stored.get(kind, []) or [] if not insurer_owns(kind, e)]
        _set(out, kind, _union(kind, list(row.get(kind, [])), others))
    return out


def merge_from_clinic(stored: Resource, message: Resource, insurer_knows: bool) -> Resource:
    """A clinic's Patient folded into the stored one (docs/insurer-adapter.md, "Merge policy"):

    - identifiers and telecoms are added when not there yet; nothing is removed, so the
      insurer's KVNR and other sources' identifiers stay;
    - names and addresses: the insurer's (official name once it knows the Patient, its marked
      addresses) stay first; the clinic's own follow its latest message; an official name of
      the clinic is left out while the insurer's official name is there;
    - birthDate, gender (+ ``_gender``): the insurer's once it knows the Patient (a message
      only fills what is missing); otherwise the clinic's latest message;
    - other elements: the message's when it has them, else what is stored.

    Duplicates (the same system and value, name or address) are not added. Folding the same
    message in again gives the same content (a resend stores no new version).
    """
    out = {k: v for k, v in stored.items() if k not in ("id", "meta")}
    meta = {
        k: v for k, v in (stored.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")
    }
    insurer_gender = insurer_knows and bool(stored.get("gender"))
    for key, value in message.items():
        if key in ("resourceType", "id", "meta"):
            continue
        if key in ("identifier", "telecom"):
            out[key] = _union(key, out.get(key) or [], value)
        elif key in ("name", "address"):
            theirs = [e for e in out.get(key) or [] if insurer_owns(key, e, insurer_knows)]
            incoming = value
            if key == "name" and theirs:
                incoming = [
                    n for n in value if not (isinstance(n, dict) and n.get("use") == "official")
                ]
            _set(out, key, _union(key, theirs, incoming))
        elif key in ("gender", "_gender"):
            if not insurer_gender:
                out[key] = value
        elif key == "birthDate" and insurer_knows and out.get(key):
            continue
        else:
            out[key] = value
    if not insurer_gender and "gender" in message and "_gender" not in message:
        out.pop("_gender", None)  # the clinic's gender replaced, with its qualifier
    if meta:
        return {"resourceType": out["resourceType"], "meta": meta, **out}
    return out

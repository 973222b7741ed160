"""One HL7 v2 message to one FHIR transaction Bundle, driven by the files in ``mappings/``.

What is supported is data: ``mappings/hl7v2/events.csv`` lists the events, and the profile
the versions. An unsupported event or version is rejected (AR, ERR-3 200/201/203) before
anything is mapped; data errors are AE with the segment and field they concern.

:func:`apply` writes a conversion: in one unit of work it first matches the message's Patient
against the store (``adapters.identity``: one Patient per person, shared with the
insurer adapter), then runs the bundle as a FHIR transaction in that same unit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

from adapters import identity
from adapters.hl7v2.parse import parse
from adapters.hl7v2.types import (
    ERR_APPLICATION_INTERNAL,
    ERR_REQUIRED_FIELD_MISSING,
    ERR_UNSUPPORTED_EVENT,
    ERR_UNSUPPORTED_MESSAGE_TYPE,
    ERR_UNSUPPORTED_VERSION,
    Conversion,
    V2Error,
)
from adapters.mapping import engine
from adapters.mapping.loader import MappingSet, load
from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError
from fhir_server.service.resources import ResourceService, Unit, stamp
from fhir_server.service.transaction import EntryResult, process

#: Table 0357 "duplicate key identifier": the patient's identifiers belong to someone else.
ERR_IDENTITY_CONFLICT = "205"


@lru_cache(maxsize=1)
def default_mappings() -> MappingSet:
    """The project's mappings, loaded and checked once; call at start-up to fail early."""
    return load()


def load_mappings(*roots: Path) -> MappingSet:
    """The project's mappings with site overlays (later roots win, ``extends`` amends)."""
    from adapters.mapping.events import DEFAULT_ROOT

    return load([DEFAULT_ROOT, *roots])


def convert(raw: bytes, mappings: MappingSet | None = None) -> Conversion:
    """Convert one message; V2Error (reject=True for AR) when it cannot be converted."""
    message = parse(raw)
    ms = mappings or default_mappings()
    header = message.header
    kind, trigger = header.message_type, header.trigger_event
    event = ms.events.get((kind, trigger))
    if event is None:
        supported = sorted({f"{t}^{e}" for t, e in ms.events if t == kind})
        if supported:
            reason = (
                f"{kind}^{trigger or '(no trigger event)'} is not supported; "
                f"supported {kind} events: {', '.join(supported)}"
            )
            code = ERR_UNSUPPORTED_EVENT
        else:
            types = ", ".join(sorted({t for t, _ in ms.events}))
            reason = f"message type {kind} is not supported (supported: {types})"
            code = ERR_UNSUPPORTED_MESSAGE_TYPE
        raise V2Error(reason, code=code, segment="MSH", sequence=1, field_position=9, reject=True)
    if not header.version:
        raise V2Error(
            "MSH-12 (version) is empty",
            code=ERR_REQUIRED_FIELD_MISSING,
            segment="MSH",
            sequence=1,
            field_position=12,
            reject=True,
        )
    if header.version not in ms.profile.versions:
        raise V2Error(
            f"HL7 version {header.version} is not supported "
            f"(supported: {', '.join(ms.profile.versions)})",
            code=ERR_UNSUPPORTED_VERSION,
            segment="MSH",
            sequence=1,
            field_position=12,
            reject=True,
        )
    warnings = list(message.warnings)
    if header.structure and header.structure != event.structure:
        warnings.append(
            f"MSH-9.3 says {header.structure}; {kind}^{trigger} is {event.structure} "
            f"and is mapped as such"
        )
    try:
        bundle, mapped = engine.run(ms, message, event)
    except V2Error:
        raise
    except Exception as exc:  # a bug must still reach the sender as an AE, not a crash
        raise V2Error(
            f"internal error converting {kind}^{trigger}: {type(exc).__name__}: {exc}",
            code=ERR_APPLICATION_INTERNAL,
        ) from exc
    return Conversion(header, bundle, warnings + mapped)


# --- writing a conversion -----------------------------------------------------------------


def apply(
    service: ResourceService, conversion: Conversion, base_url: str, unit: Unit | None = None
) -> list[EntryResult]:
    """Match the message's Patient and run its bundle, both in one unit of work.

    ``unit``: run inside the caller's unit (the intake stores the message, applies it and
    records the outcome in one database transaction); otherwise in a unit of its own.
    Raises V2Error (AE, ERR on PID-3 or PID-7) when the Patient cannot be matched without
    merging two persons, and FhirError 409 when a concurrent message created the Patient
    this one was about to create (the caller retries; the retry finds and merges it).
    """
    if unit is None:
        with service.unit() as own:
            return _apply(service, own, conversion, base_url)
    return _apply(service, unit, conversion, base_url)


def _apply(
    service: ResourceService, unit: Unit, conversion: Conversion, base_url: str
) -> list[EntryResult]:
    matched, created = _match_patients(unit, conversion.bundle)
    bundle, unchanged = _without_unchanged(unit, matched, created)
    results = iter(process(service, bundle, base_url, unit=unit)[1])
    out: list[EntryResult] = []
    for index, entry in enumerate(matched.get("entry", [])):
        if index in unchanged:
            out.append(unchanged[index])
            continue
        result = next(results)
        key = _entry_key(entry)
        if key in created and result.status != 201:
            raise FhirError(
                409, "conflict", f"{key[0]}/{key[1]} was created concurrently; try again"
            )
        out.append(result)
    return out


#: Resources many messages name alike (the ordering physician, the ward, the lab): written
#: again only when their content changed, so that concurrent messages do not queue on them.
SHARED_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "Location", "Organization", "Device", "HealthcareService"}
)


class _Seen:
    """The last content this process sent for each shared resource (bounded, LRU).

    Only a hint of which entries are worth the unlocked read that checks them: content never
    sent before is not looked up at all (a message naming a new physician costs no extra
    statement). Whether an entry is left out is always decided by the stored row.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._last: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def repeated(self, key: tuple[str, str], content: bytes) -> bool:
        """Whether ``content`` is what was sent last for ``key``; remembers it either way."""
        with self._lock:
            same = self._last.get(key) == content
            self._last[key] = content
            self._last.move_to_end(key)
            if len(self._last) > self.size:
                self._last.popitem(last=False)
        return same


_seen = _Seen()


def _without_unchanged(
    unit: Unit, bundle: dict[str, Any], created: set[tuple[str, str]]
) -> tuple[dict[str, Any], dict[int, EntryResult]]:
    """The bundle without PUT entries of shared resources stored with this very content.

    Such a PUT stores no new version anyway (the service's no-op update rule), but running it
    locks the row until the message's transaction ends, which serialises every message that
    names the same physician. Read without a lock, an unchanged resource is left out: the
    outcome is the same as if this message ran just before any concurrent change to it.
    """
    entries: list[dict[str, Any]] = bundle.get("entry", [])
    wanted: dict[int, tuple[str, str]] = {}
    for index, entry in enumerate(entries):
        request = entry.get("request") or {}
        rtype, rid = _entry_key(entry)
        if (
            rtype in SHARED_TYPES
            and rtype not in unit.hooks.before
            and request.get("method") == "PUT"
            and request.get("url") == f"{rtype}/{rid}"
            and not request.get("ifMatch")
            and (rtype, rid) not in created
            and _seen.repeated((rtype, rid), jsonio.dumps(entry["resource"]))
        ):
            wanted[index] = (rtype, rid)
    if not wanted:
        return bundle, {}
    current = unit.current_many(list(wanted.values()))
    unchanged: dict[int, EntryResult] = {}
    for index, (rtype, rid) in wanted.items():
        stored = current.get((rtype, rid))
        if stored is None or stored.deleted or stored.content is None:
            continue
        same = stamp(entries[index]["resource"], rid, stored.version_id, stored.last_updated)
        if jsonio.dumps(same) == stored.content:
            unchanged[index] = EntryResult(200, stored)
    if not unchanged:
        return bundle, {}
    kept = [entry for index, entry in enumerate(entries) if index not in unchanged]
    return {**bundle, "entry": kept}, unchanged


def _entry_key(entry: dict[str, Any]) -> tuple[str, str]:
    resource = entry.get("resource") or {}
    return str(resource.get("resourceType", "")), str(resource.get("id", ""))


def _match_patients(
    unit: Unit, bundle: dict[str, Any]
) -> tuple[dict[str, Any], set[tuple[str, str]]]:
    """The bundle with each Patient matched to the stored one (merged, its id everywhere);
    and the (type, id) of Patients it creates."""
    renames: dict[str, str] = {}
    created: set[tuple[str, str]] = set()
    entries = []
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if resource.get("resourceType") != "Patient":
            entries.append(entry)
            continue
        legacy = str(resource["id"])
        target, content = _match(unit, resource, legacy)
        if target in renames.values() or ("Patient", target) in created:
            raise V2Error(
                "two patients of the message are the same stored Patient",
                code=ERR_IDENTITY_CONFLICT,
                segment="PID",
                field_position=3,
            )
        if content is resource:
            created.add(("Patient", target))
        if target != legacy:
            renames[legacy] = target
        entries.append(
            {
                **entry,
                "fullUrl": f"urn:uuid:{target}",
                "resource": {**content, "id": target},
                "request": {**entry["request"], "url": f"Patient/{target}"},
            }
        )
    matched = {**bundle, "entry": entries}
    if renames:
        old = {f"Patient/{a}": f"Patient/{b}" for a, b in renames.items()}
        old |= {f"urn:uuid:{a}": f"Patient/{b}" for a, b in renames.items()}
        matched = _renamed(matched, old)
    return matched, created


def _match(unit: Unit, patient: dict[str, Any], legacy: str) -> tuple[str, dict[str, Any]]:
    """(id, content) for one Patient of the message: the stored one merged, or a new one."""
    ids = [legacy]
    new_id = identity.new_patient_id(patient, legacy)
    if new_id != legacy:
        ids.append(new_id)
    found = identity.candidates(unit, identity.shared_keys(patient), ids)
    try:
        target = identity.choose(patient, found)
    except identity.IdentityConflict as exc:
        field_position = 7 if exc.element == "birthDate" else 3
        raise V2Error(
            f"patient identity: {exc.message}",
            code=ERR_IDENTITY_CONFLICT,
            segment="PID",
            sequence=1,
            field_position=field_position,
        ) from exc
    if target is None:
        return new_id, patient
    merged = identity.merge_from_clinic(
        target.content, patient, identity.insurer_known(unit, target)
    )
    return target.id, merged


def _renamed(value: Any, old: dict[str, str]) -> Any:
    """``value`` with every reference string in ``old`` replaced (a new structure)."""
    if isinstance(value, dict):
        return {
            k: (old.get(v, v) if k == "reference" and isinstance(v, str) else _renamed(v, old))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_renamed(v, old) for v in value]
    return value

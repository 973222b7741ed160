"""One HL7 v2 message to one FHIR transaction Bundle, driven by the files in ``mappings/``.

What is supported is data: ``mappings/hl7v2/events.csv`` lists the events, and the profile
the versions. An unsupported event or version is rejected (AR, ERR-3 200/201/203) before
anything is mapped; data errors are AE with the segment and field they concern.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

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

"""Trigger events to message structures and mappings (``mappings/hl7v2/events.csv``).

One mapping serves every event that shares a structure (ADT_A01 serves A01, A04, A08, A13
...), so a new event is a new line here, not a copied template.
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from pathlib import Path

from adapters.mapping.spec import Event

#: The mapping data shipped with the project (``<repo>/mappings``).
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "mappings"

_COLUMNS = ["message_type", "trigger_event", "structure", "mapping", "description"]


def read_events(text: str, source: str = "events.csv") -> list[Event]:
    """Parse events.csv; ValueError naming the line on any fault."""
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(rows)))
    if reader.fieldnames != _COLUMNS:
        raise ValueError(f"{source}: the header must be {','.join(_COLUMNS)}")
    events = []
    seen: set[tuple[str, str]] = set()
    for number, row in enumerate(reader, start=2):
        values = {k: (v or "").strip() for k, v in row.items() if k is not None}
        if not all(values[k] for k in _COLUMNS[:4]):
            raise ValueError(
                f"{source} row {number}: message_type, trigger_event, structure "
                "and mapping are required"
            )
        key = (values["message_type"], values["trigger_event"])
        if key in seen:
            raise ValueError(f"{source} row {number}: {key[0]}^{key[1]} is listed twice")
        seen.add(key)
        events.append(Event(**values))
    return events


@lru_cache(maxsize=1)
def _default_structures() -> dict[tuple[str, str], str]:
    path = DEFAULT_ROOT / "hl7v2" / "events.csv"
    try:
        events = read_events(path.read_text("utf-8"), str(path))
    except (OSError, ValueError):
        return {}
    return {(e.message_type, e.trigger_event): e.structure for e in events}


def structure_for(message_type: str, trigger: str) -> str:
    """The standard structure of an event (ADT^A04: ADT_A01), or TYPE_TRIGGER if unknown."""
    known = _default_structures().get((message_type, trigger))
    if known:
        return known
    return f"{message_type}_{trigger}" if trigger else message_type

"""Writing ER7 by hand: segments from numbered fields, escaped leaves, DTM in German time.

The messages we build (the verdict's ORU^R01 in ``oru.py``, the demo clinic's SIU and ORU in
``fhir_server/demo/messages.py``, the ACK in ``ack.py``) are a handful of segments each, and
every free-text leaf must be escaped exactly once, which hl7apy does not guarantee (it
re-encodes escapes). These helpers are the one place that knows how fields, components and
subcomponents are joined, so every builder writes the same bytes for the same values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from adapters.hl7v2.types import Delimiters

#: German local time: the clinics' systems read DTM with this offset.
ZONE = ZoneInfo("Europe/Berlin")
#: ``|^~\&``, what every message we build uses.
DEFAULT = Delimiters()


def escape(text: str, d: Delimiters) -> str:
    """Escape free text for a field (HL7 v2 section 2.7); line breaks become spaces."""
    table = {
        d.escape: f"{d.escape}E{d.escape}",
        d.field: f"{d.escape}F{d.escape}",
        d.component: f"{d.escape}S{d.escape}",
        d.subcomponent: f"{d.escape}T{d.escape}",
        d.repetition: f"{d.escape}R{d.escape}",
    }
    out = []
    for ch in text:
        if ch in table:
            out.append(table[ch])
        elif ch < " " or ch == "\x7f":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def leaf(value: object, d: Delimiters = DEFAULT) -> str:
    """One escaped leaf (None is empty), so that data can never add a delimiter."""
    return escape(str(value), d) if value is not None else ""


def join(sep: str, parts: Iterable[str]) -> str:
    """Parts (already escaped) joined, trailing empty parts dropped (as HL7 v2 wants them)."""
    items = list(parts)
    while items and not items[-1]:
        items.pop()
    return sep.join(items)


def comp(*parts: str, d: Delimiters = DEFAULT) -> str:
    """A field (or repetition) from its components, already escaped."""
    return join(d.component, parts)


def sub(*parts: str, d: Delimiters = DEFAULT) -> str:
    """A component from its subcomponents, already escaped."""
    return join(d.subcomponent, parts)


def encoding_characters(d: Delimiters = DEFAULT) -> str:
    """MSH-2 (``^~\\&``): written as it is, never escaped."""
    return d.component + d.repetition + d.escape + d.subcomponent


def segment(name: str, fields: dict[int, str], d: Delimiters = DEFAULT) -> str:
    """A segment from its fields by number (already escaped); fields not given are empty.

    MSH counts as written: MSH-1 is the separator itself, so key 1 of MSH is MSH-2 (the
    encoding characters) and key n is MSH-(n+1).
    """
    values = [""] * max(fields)
    for index, value in fields.items():
        values[index - 1] = value
    return join(d.field, [name, *values])


def dtm(when: datetime) -> str:
    """HL7 DTM to the second in German local time with its offset (``20260305143000+0100``)."""
    return when.astimezone(ZONE).strftime("%Y%m%d%H%M%S%z")


def er7(segments: Sequence[str]) -> bytes:
    """The message as UTF-8 ER7 bytes, each segment ended by CR."""
    return ("\r".join(segments) + "\r").encode("utf-8")

"""Reading HL7 v2 bytes: framing tolerance, the header, batch splitting and an exact parser.

Our own parser rather than a library's: python-hl7 and hl7apy both need ``\\r`` separators,
hl7apy is slow (about 55 ORU/s), drops Z-segments when it groups and corrupts escapes. Here a
message is a few ``str.split`` calls; fields are split and unescaped only when first read,
and every segment (Z-segments included) is kept in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.hl7v2.types import (
    ERR_DATA_TYPE,
    ERR_REQUIRED_FIELD_MISSING,
    ERR_SEGMENT_SEQUENCE,
    Delimiters,
    MessageHeader,
    V2Error,
)

#: One v2 component: its subcomponents, unescaped.
Component = list[str]
#: One repetition of a field: its components.
Repetition = list[Component]
#: A field: its repetitions (empty when the field is empty or absent).
Field = list[Repetition]

_BOM = b"\xef\xbb\xbf"
_MLLP = b"\x0b\x1c"
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}")
_BATCH_SEGMENTS = frozenset({"FHS", "FTS", "BHS", "BTS"})
#: MSH-18 character sets that are not UTF-8, by the Python codec that reads them.
_CHARSETS = {
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
}


@dataclass(frozen=True, slots=True)
class Encoding:
    """MSH-1/MSH-2 as read, plus the truncation character of v2.7+ (it is never a delimiter)."""

    delimiters: Delimiters
    truncation: str = ""


class Segment:
    """One segment; fields are split and unescaped on first access and then cached.

    ``index`` is the position in the message (0 = MSH) and ``sequence`` the 1-based occurrence
    among segments of the same name, as ERR-2 locates a segment.
    """

    __slots__ = (
        "_parsed",
        "_unescape",
        "_valued",
        "encoding",
        "index",
        "name",
        "raw_fields",
        "sequence",
    )

    def __init__(
        self,
        name: str,
        raw_fields: list[str],
        index: int,
        sequence: int,
        encoding: Encoding,
        unescape: Callable[[str], str],
    ) -> None:
        self.name = name
        self.raw_fields = raw_fields
        self.index = index
        self.sequence = sequence
        self.encoding = encoding
        self._unescape = unescape
        self._parsed: dict[int, Field] = {}
        self._valued: dict[int, Field] = {}

    def raw(self, number: int) -> str:
        """Field ``number`` as sent (escapes kept); MSH-1 is the field separator."""
        return self.raw_fields[number] if 0 < number < len(self.raw_fields) else ""

    def field(self, number: int) -> Field:
        """Field ``number`` split into repetitions, components and unescaped subcomponents."""
        parsed = self._parsed.get(number)
        if parsed is None:
            parsed = self._parsed[number] = self._split(number)
        return parsed

    def valued(self, number: int) -> Field:
        """The repetitions of field ``number`` that hold something (cached)."""
        found = self._valued.get(number)
        if found is None:
            found = self._valued[number] = [rep for rep in self.field(number) if has_value(rep)]
        return found

    def value(self, number: int, component: int = 1, subcomponent: int = 1) -> str:
        """One leaf of the first repetition, or ``""``."""
        reps = self.field(number)
        if not reps:
            return ""
        comps = reps[0]
        if component > len(comps):
            return ""
        subs = comps[component - 1]
        return subs[subcomponent - 1] if subcomponent <= len(subs) else ""

    def _split(self, number: int) -> Field:
        fields = self.raw_fields
        raw = fields[number] if 0 < number < len(fields) else ""
        if not raw or raw == '""':
            return []
        if self.name == "MSH" and number <= 2:
            return [[[raw]]]
        d = self.encoding.delimiters
        unescape, escape = self._unescape, d.escape
        if d.repetition not in raw and d.component not in raw and d.subcomponent not in raw:
            return [[[_leaf(raw, escape, unescape)]]]  # the common case: one plain value
        return [
            [
                [  # _leaf only where it changes something: most leaves are plain text
                    _leaf(sub, escape, unescape) if escape in sub or sub == '""' else sub
                    for sub in comp.split(d.subcomponent)
                ]
                for comp in rep.split(d.component)
            ]
            for rep in raw.split(d.repetition)
        ]

    def __repr__(self) -> str:
        return f"Segment({self.name}#{self.sequence} at {self.index})"


def has_value(rep: Repetition) -> bool:
    """Whether a repetition has any non-empty subcomponent."""
    for comp in rep:
        for sub in comp:
            if sub:
                return True
    return False


def _leaf(text: str, escape: str, unescape: Callable[[str], str]) -> str:
    if text == '""':  # the v2 explicit null: "no value" for a FHIR resource
        return ""
    return unescape(text) if escape in text else text


@dataclass
class Message:
    """A parsed message: its header, its segments in order and what the parser noticed."""

    header: MessageHeader
    encoding: Encoding
    segments: list[Segment]
    warnings: list[str] = field(default_factory=list)

    def first(self, name: str) -> Segment | None:
        return next((s for s in self.segments if s.name == name), None)

    def all(self, name: str) -> list[Segment]:
        return [s for s in self.segments if s.name == name]


# --- framing ------------------------------------------------------------------------------


def _lines(data: bytes) -> list[bytes]:
    """Segments as byte strings: BOM and MLLP framing stripped, any line break, no blanks."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    lines = []
    for line in _LINE_BREAK.split(data):
        line = line.strip(_MLLP)
        if line.strip():
            lines.append(line)
    return lines


def normalise(raw: bytes) -> bytes:
    """The message with ``\\r`` after every segment, no BOM and no blank lines."""
    return b"".join(line + b"\r" for line in _lines(raw))


def split_messages(data: bytes) -> list[bytes]:
    """Split a file of messages and/or FHS/BHS batches into single normalised messages.

    Batch headers and trailers are dropped. A segment outside any message, or a batch header
    inside an open batch (a missing BTS), makes the file unreadable: V2Error(reject=True).
    """
    messages: list[list[bytes]] = []
    current: list[bytes] | None = None
    batch_open = file_open = False
    for number, line in enumerate(_lines(data), start=1):
        name = line[:3].decode("latin-1")
        if name == "MSH":
            current = [line]
            messages.append(current)
        elif name in _BATCH_SEGMENTS:
            current = None
            if name == "FHS":
                if file_open or batch_open or messages:
                    raise _framing(f"line {number}: FHS inside a file that is already open")
                file_open = True
            elif name == "BHS":
                if batch_open:
                    raise _framing(f"line {number}: BHS before the previous batch's BTS")
                batch_open = True
            elif name == "BTS":
                batch_open = False
            else:
                file_open = False
        elif current is None:
            raise _framing(
                f"line {number}: segment {name!r} is outside a message (no MSH before it)"
            )
        else:
            current.append(line)
    return [b"".join(line + b"\r" for line in message) for message in messages]


def _framing(message: str) -> V2Error:
    return V2Error(message, code=ERR_SEGMENT_SEQUENCE, reject=True)


# --- the header -----------------------------------------------------------------------------


def _first_line(raw: bytes) -> bytes:
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    raw = raw.lstrip(b"\x0b\r\n\t ")
    ends = [i for i in (raw.find(b"\r"), raw.find(b"\n")) if i >= 0]
    return raw[: min(ends)] if ends else raw


def _read_encoding(line: str) -> tuple[Encoding, list[str]]:
    """Delimiters from MSH-1/MSH-2 and the MSH fields; V2Error(reject) when unreadable."""
    name = line[:3]
    if name != "MSH":
        if name in _BATCH_SEGMENTS:
            reason = f"the data begins with a batch header ({name}): split it with split_messages"
        elif not line.strip():
            reason = "the message is empty"
        else:
            reason = f"the first segment is {name!r}, not MSH"
        raise V2Error(reason, code=ERR_SEGMENT_SEQUENCE, segment="MSH", sequence=1, reject=True)
    if len(line) < 8:
        raise _bad_msh(2, "MSH is too short to hold MSH-1 and MSH-2")
    separator = line[3]
    if separator.isalnum() or separator.isspace():
        raise _bad_msh(1, f"MSH-1 {separator!r} cannot be a field separator")
    fields = line.split(separator)
    chars = fields[1]
    if len(chars) not in (4, 5):
        raise _bad_msh(2, f"MSH-2 {chars!r} must hold 4 encoding characters (5 from v2.7)")
    every = separator + chars
    if len(set(every)) != len(every):
        raise _bad_msh(2, f"MSH-2 {chars!r} repeats a delimiter (field separator {separator!r})")
    if any(c.isalnum() or c.isspace() for c in chars):
        raise _bad_msh(2, f"MSH-2 {chars!r} holds a letter, digit or blank")
    delimiters = Delimiters(separator, chars[0], chars[1], chars[2], chars[3])
    return Encoding(delimiters, chars[4:]), ["MSH", separator, *fields[1:]]


def _bad_msh(field_position: int, reason: str) -> V2Error:
    return V2Error(
        reason,
        code=ERR_DATA_TYPE,
        segment="MSH",
        sequence=1,
        field_position=field_position,
        reject=True,
    )


def _header(fields: list[str], delimiters: Delimiters) -> MessageHeader:
    def raw(n: int) -> str:
        return fields[n] if n < len(fields) else ""

    def parts(n: int) -> list[str]:
        first = raw(n).split(delimiters.repetition)[0]
        unescape = _unescaper(delimiters, "", [])
        return [
            unescape(c.split(delimiters.subcomponent)[0]) for c in first.split(delimiters.component)
        ]

    kind = [*parts(9), "", "", ""]
    if not kind[0]:
        raise V2Error(
            "MSH-9 (message type) is empty",
            code=ERR_REQUIRED_FIELD_MISSING,
            segment="MSH",
            sequence=1,
            field_position=9,
            reject=True,
        )
    message_type, trigger, structure = (k.strip() for k in kind[:3])
    return MessageHeader(
        sending_application=raw(3),
        sending_facility=raw(4),
        receiving_application=raw(5),
        receiving_facility=raw(6),
        control_id=raw(10),
        message_type=message_type,
        trigger_event=trigger,
        structure=structure or _structure_for(message_type, trigger),
        processing_id=parts(11)[0],
        version=parts(12)[0].strip(),
        accept_ack_type=raw(15),
        application_ack_type=raw(16),
        delimiters=delimiters,
    )


def _structure_for(message_type: str, trigger: str) -> str:
    from adapters.mapping.events import structure_for

    return structure_for(message_type, trigger)


def read_header(raw: bytes) -> MessageHeader:
    """MSH of one message without parsing the rest; V2Error(reject=True) if it is unreadable.

    Application and facility fields are returned as sent (components joined by the sender's
    delimiters, escapes kept) so that an ACK can echo them with ``header.delimiters``.
    """
    line = _first_line(raw).decode("utf-8", errors="replace")
    encoding, fields = _read_encoding(line)
    return _header(fields, encoding.delimiters)


# --- the parser -------------------------------------------------------------------------------


def _decode(data: bytes, first_line: bytes, warnings: list[str]) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = ""
    text = first_line.decode("latin-1")
    if len(text) > 3:
        fields = text.split(text[3])
        declared = fields[17].split(fields[1][:1] or "^")[0].strip() if len(fields) > 17 else ""
    codec = _CHARSETS.get(declared.upper(), "cp1252")
    if codec in ("utf-8", "ascii"):
        warnings.append(
            f"the message is not valid {declared or 'UTF-8'}; undecodable bytes replaced"
        )
        return data.decode("utf-8", errors="replace")
    if not declared:
        warnings.append("the message is not UTF-8 and MSH-18 is empty; read as Windows-1252")
    return data.decode(codec, errors="replace")


def parse(raw: bytes) -> Message:
    """Parse one message. Unusable lines become warnings; an unreadable header a V2Error."""
    lines = _lines(raw)
    if not lines:
        raise V2Error("the message is empty", code=ERR_SEGMENT_SEQUENCE, reject=True)
    warnings: list[str] = []
    text = _decode(b"\r".join(lines), lines[0], warnings)
    text_lines = text.split("\r")
    encoding, msh_fields = _read_encoding(text_lines[0])
    delimiters = encoding.delimiters
    header = _header(msh_fields, delimiters)
    unescape = _unescaper(delimiters, encoding.truncation, warnings)
    counts: dict[str, int] = {"MSH": 1}
    segments = [Segment("MSH", msh_fields, 0, 1, encoding, unescape)]
    for number, line in enumerate(text_lines[1:], start=2):
        name = line[:3]
        if not _SEGMENT_NAME.fullmatch(name) or (len(line) > 3 and line[3] != delimiters.field):
            warnings.append(f"line {number} is not a segment and was ignored: {line[:20]!r}")
            continue
        if name == "MSH" or name in _BATCH_SEGMENTS:
            raise V2Error(
                f"line {number}: {name} inside a message; split files with split_messages",
                code=ERR_SEGMENT_SEQUENCE,
                segment=name,
                reject=True,
            )
        counts[name] = counts.get(name, 0) + 1
        fields = line.split(delimiters.field)
        segments.append(Segment(name, fields, len(segments), counts[name], encoding, unescape))
    return Message(header, encoding, segments, warnings)


# --- escapes ------------------------------------------------------------------------------------

#: FT formatting commands: line breaks become newlines, layout-only commands vanish.
_FORMATTING = {".br": "\n", ".ce": "\n", ".fi": "", ".nf": "", ".in": "", ".ti": "", ".sk": ""}


def _unescaper(d: Delimiters, truncation: str, warnings: list[str]) -> Callable[[str], str]:
    """A function that replaces the escape sequences in one subcomponent's text."""
    fixed = {
        "F": d.field,
        "S": d.component,
        "T": d.subcomponent,
        "R": d.repetition,
        "E": d.escape,
        "H": "",  # highlighting on/off: no meaning in FHIR text
        "N": "",
    }
    if truncation:
        fixed["P"] = truncation
    escape = d.escape

    def sequence(code: str) -> str | None:
        if code in fixed:
            return fixed[code]
        if code.startswith(".sp"):
            count = code[3:].strip()
            return "\n" * (int(count) if count.isdigit() else 1)
        if code[:3] in _FORMATTING:
            return _FORMATTING[code[:3]]
        if code[:1] == "X" and len(code) % 2 == 1 and len(code) > 1:
            try:
                data = bytes.fromhex(code[1:])
            except ValueError:
                return None
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data.decode("latin-1")
        if code[:1] in ("C", "M"):  # ISO 2022 character-set switches: the text is decoded
            return ""
        return None

    def unescape(text: str) -> str:
        out: list[str] = []
        start = 0
        while True:
            begin = text.find(escape, start)
            if begin < 0:
                out.append(text[start:])
                break
            end = text.find(escape, begin + 1)
            if end < 0:
                warnings.append(f"unterminated escape sequence kept as text: {text[begin:][:20]!r}")
                out.append(text[start:])
                break
            out.append(text[start:begin])
            code = text[begin + 1 : end]
            replacement = sequence(code)
            if replacement is None:
                warnings.append(f"unknown escape sequence {escape}{code}{escape} kept as text")
                replacement = f"{escape}{code}{escape}"
            out.append(replacement)
            start = end + 1
        return "".join(out)

    return unescape


def unescape(text: str, delimiters: Delimiters | None = None) -> str:
    """Unescape one subcomponent's text (for callers outside a parsed message)."""
    return _unescaper(delimiters or Delimiters(), "", [])(text)

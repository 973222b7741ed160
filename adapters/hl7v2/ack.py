"""HL7 v2 acknowledgments: build them in the sender's dialect, read them back.

Built by hand rather than with hl7apy: an ACK is three short segments, and it must keep the
sender's delimiters and version exactly (hl7apy re-encodes and mangles escapes). Header
values copied from the original (applications, facilities, MSH-10) are already encoded with
those delimiters, so they are copied as they are; only our own free text is escaped.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters.hl7v2.build import escape
from adapters.hl7v2.types import Delimiters, MessageHeader, V2Error

#: MSA-1 codes. Original mode: AA/AE/AR. Enhanced mode accept ACK: CA/CE/CR.
ACCEPT, ERROR, REJECT = "AA", "AE", "AR"
COMMIT_ACCEPT, COMMIT_ERROR, COMMIT_REJECT = "CA", "CE", "CR"
OUR_APPLICATION = "IVZ-BRIDGE"
DEFAULT_VERSION = "2.5.1"

#: HL7 table 0357, the texts for ERR-3.2.
ERROR_TEXTS = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
_USER_MESSAGE_LIMIT = 500
_LEGACY_TEXT_LIMIT = 80


def _copied(value: str, d: Delimiters) -> str:
    """A header value copied from the original: encoded already, but never breaks the ACK."""
    return "".join(" " if ch in "\r\n" else ch for ch in value).replace(
        d.field, f"{d.escape}F{d.escape}"
    )


def _version_tuple(version: str) -> tuple[int, ...]:
    digits = []
    for part in version.split(".")[:3]:
        number = "".join(ch for ch in part if ch.isdigit())
        digits.append(int(number) if number else 0)
    return tuple(digits)


def _msh9(trigger: str, version: str, d: Delimiters) -> str:
    if not trigger or _version_tuple(version) < (2, 3):
        return "ACK"
    if _version_tuple(version) < (2, 3, 1):
        return f"ACK{d.component}{trigger}"
    return f"ACK{d.component}{trigger}{d.component}ACK"


def new_control_id() -> str:
    """20 characters: the MSH-10 limit of v2.3-2.6."""
    return secrets.token_hex(10)


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000")


def build_ack(
    header: MessageHeader | None,
    code: str,
    error: V2Error | None = None,
    *,
    when: datetime | None = None,
    control_id: str | None = None,
) -> str:
    """An ACK for ``header`` (None: the header could not be read) with MSA-1 = ``code``.

    Send it with ``encode_ack``. Enhanced-mode ACKs ask for no ACK themselves (MSH-15/16 =
    NE), so that two engines never acknowledge each other's acknowledgments.
    """
    d = header.delimiters if header else Delimiters()
    version = (header.version if header else "") or DEFAULT_VERSION
    enhanced = header is not None and not is_original_mode(header)
    msh = [
        "MSH",
        d.component + d.repetition + d.escape + d.subcomponent,
        _copied(header.receiving_application, d) if header else "",
        _copied(header.receiving_facility, d) if header else "",
        _copied(header.sending_application, d) if header else "",
        _copied(header.sending_facility, d) if header else "",
        _timestamp(when or datetime.now(UTC)),
        "",
        _msh9(header.trigger_event if header else "", version, d),
        control_id or new_control_id(),
        _copied(header.processing_id, d) if header and header.processing_id else "P",
        _copied(version, d),
    ]
    if not msh[2]:
        msh[2] = OUR_APPLICATION
    if enhanced:
        msh += ["", "", "NE", "NE"]
    legacy = _version_tuple(version) < (2, 5)
    msa = ["MSA", code, _copied(header.control_id, d) if header else ""]
    if error is not None and legacy:
        msa.append(escape(error.message[:_LEGACY_TEXT_LIMIT], d))
    segments = [d.field.join(msh), d.field.join(msa)]
    if error is not None:
        segments.append(_err(error, d, legacy))
    return "\r".join(segments) + "\r"


def _err(error: V2Error, d: Delimiters, legacy: bool) -> str:
    cs, ss = d.component, d.subcomponent
    text = ERROR_TEXTS.get(error.code, "")
    location = ""
    if error.segment:
        parts = [error.segment, str(error.sequence or 1)]
        if error.field_position is not None:
            parts.append(str(error.field_position))
        location = cs.join(parts)
    eld = ""
    if legacy:  # v2.1-2.4: ERR-1 carries location and code together (data type ELD)
        pos = [error.segment or "", str(error.sequence or "") if error.segment else ""]
        pos.append(str(error.field_position) if error.field_position is not None else "")
        eld = cs.join([*pos, ss.join([error.code, text, "HL70357"])])
    severity = "E"
    fields = [
        "ERR",
        eld,
        location,
        cs.join([error.code, text, "HL70357"]),
        severity,
        "",
        "",
        "",
        escape(error.message[:_USER_MESSAGE_LIMIT], d),
    ]
    return d.field.join(fields)


def wire_charset(raw: bytes | None) -> str:
    """UTF-8 when the original was valid UTF-8 (or unknown), else ISO 8859-1."""
    if raw is not None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return "iso-8859-1"
    return "utf-8"


def encode_ack(ack: str, raw: bytes | None = None) -> bytes:
    """The ACK's bytes in the original's character set (see ``wire_charset``).

    Copied header values then come back in the sender's own bytes; our free text is ASCII.
    """
    return ack.encode(wire_charset(raw), errors="replace")


def is_original_mode(header: MessageHeader) -> bool:
    """Original acknowledgment mode unless MSH-15 or MSH-16 asks for enhanced mode."""
    return not header.accept_ack_type.strip() and not header.application_ack_type.strip()


def _wanted(condition: str, ok: bool) -> bool:
    """HL7 table 0155; an empty or unknown condition in enhanced mode counts as AL."""
    condition = condition.strip().upper()
    if condition == "NE":
        return False
    if condition == "ER":
        return not ok
    if condition == "SU":
        return ok
    return True


def accept_ack_wanted(header: MessageHeader, code: str) -> bool:
    """Does MSH-15 ask for the accept ACK ``code`` (CA/CE/CR)?"""
    return _wanted(header.accept_ack_type, code == COMMIT_ACCEPT)


def application_ack_wanted(header: MessageHeader, code: str) -> bool:
    """Does MSH-16 ask for the application ACK ``code`` (AA/AE/AR)?"""
    return _wanted(header.application_ack_type, code == ACCEPT)


@dataclass(frozen=True, slots=True)
class AckReply:
    """What a sender needs from an ACK it received."""

    code: str  # MSA-1
    acknowledged_id: str  # MSA-2: the MSH-10 of the message acknowledged
    control_id: str  # the ACK's own MSH-10
    errors: list[str] = field(default_factory=list)  # ERR-8 (else ERR-3.2) or MSA-3
    error_codes: list[str] = field(default_factory=list)  # ERR-3.1 (else ERR-1.4.1), table 0357

    @property
    def ok(self) -> bool:
        return self.code in (ACCEPT, COMMIT_ACCEPT)


def read_ack(payload: bytes) -> AckReply:
    """Read MSA and ERR of an ACK; ValueError when it is not one."""
    text = payload.decode("utf-8", errors="replace").lstrip("\ufeff")
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    segments = [s for s in text.split("\r") if s.strip()]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        raise ValueError("reply is not an HL7 v2 message (no MSH)")
    fs = segments[0][3]
    enc = segments[0][4:8]
    d = Delimiters(fs, enc[0], enc[1], enc[2], enc[3] if len(enc) > 3 else "&")
    msh = segments[0].split(fs)
    rows: dict[str, list[str]] = {}
    errors: list[str] = []
    codes: list[str] = []
    for seg in segments[1:]:
        fields = seg.split(fs)
        rows.setdefault(fields[0], fields)
        if fields[0] == "ERR":
            errors.append(_error_text(fields, d))
            codes.append(_error_code(fields, d))
    msa = rows.get("MSA")
    if msa is None or len(msa) < 2:
        raise ValueError("reply has no MSA segment")
    if not errors and len(msa) > 3 and msa[3]:
        errors.append(unescape(msa[3], d))
    return AckReply(
        code=msa[1],
        acknowledged_id=msa[2] if len(msa) > 2 else "",
        control_id=msh[9] if len(msh) > 9 else "",
        errors=errors,
        error_codes=codes,
    )


def _error_text(fields: list[str], d: Delimiters) -> str:
    if len(fields) > 8 and fields[8]:
        return unescape(fields[8], d)
    if len(fields) > 3 and fields[3]:
        parts = fields[3].split(d.component)
        return unescape(parts[1] if len(parts) > 1 and parts[1] else parts[0], d)
    return unescape(fields[1], d) if len(fields) > 1 else ""


def _error_code(fields: list[str], d: Delimiters) -> str:
    if len(fields) > 3 and fields[3]:
        return fields[3].split(d.component)[0]
    if len(fields) > 1 and fields[1]:  # v2.1-2.4: ERR-1 is segment^sequence^field^code&text
        parts = fields[1].split(d.component)
        return parts[3].split(d.subcomponent)[0] if len(parts) > 3 else ""
    return ""


def unescape(value: str, d: Delimiters) -> str:
    """Undo the five delimiter escapes (enough for reading error texts)."""
    e = d.escape
    for code, ch in (
        ("F", d.field),
        ("S", d.component),
        ("T", d.subcomponent),
        ("R", d.repetition),
        ("E", d.escape),
    ):
        value = value.replace(f"{e}{code}{e}", ch)
    return value

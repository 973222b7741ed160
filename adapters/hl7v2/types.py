"""The contract between HL7 v2 intake (listener, inbox, worker) and conversion (mappings).

Intake stores raw bytes, reads only the header to deduplicate and acknowledge, and hands the
message to ``adapters.hl7v2.convert.convert``; conversion knows nothing of sockets or storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: HL7 table 0357 (message error condition codes) used in ERR-3.
ERR_SEGMENT_SEQUENCE = "100"
ERR_REQUIRED_FIELD_MISSING = "101"
ERR_DATA_TYPE = "102"
ERR_TABLE_VALUE = "103"
ERR_UNSUPPORTED_MESSAGE_TYPE = "200"
ERR_UNSUPPORTED_EVENT = "201"
ERR_UNSUPPORTED_PROCESSING_ID = "202"
ERR_UNSUPPORTED_VERSION = "203"
ERR_APPLICATION_INTERNAL = "207"


@dataclass(frozen=True, slots=True)
class Delimiters:
    """MSH-1 and MSH-2 of the sender, reused for the ACK."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """What intake needs from MSH without converting the message."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    control_id: str  # MSH-10
    message_type: str  # MSH-9.1, e.g. "ADT"
    trigger_event: str  # MSH-9.2, e.g. "A01"
    structure: str  # MSH-9.3 when given, else derived (e.g. "ADT_A01")
    processing_id: str  # MSH-11
    version: str  # MSH-12, e.g. "2.5.1"
    accept_ack_type: str  # MSH-15 ("" = original acknowledgment mode)
    application_ack_type: str  # MSH-16
    delimiters: Delimiters = field(default_factory=Delimiters)


class V2Error(Exception):
    """A message that cannot be accepted or converted, located for the ERR segment.

    ``reject`` (AR) means the message itself is unacceptable (unsupported type/version,
    unreadable header); otherwise it is an application error (AE).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = ERR_APPLICATION_INTERNAL,
        segment: str | None = None,
        sequence: int | None = None,
        field_position: int | None = None,
        reject: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.segment = segment
        self.sequence = sequence
        self.field_position = field_position
        self.reject = reject


@dataclass
class Conversion:
    """A converted message: one FHIR transaction Bundle (dict) plus what was noticed."""

    header: MessageHeader
    bundle: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

"""The outbound ORU^R01 (v2.5.1) that tells a clinic the verdict (docs/hl7v2-outbound.md).

Built by hand with ``adapters/hl7v2/build.py``, like the ACK (``adapters/hl7v2/ack.py``): the
message is a handful of segments, every free-text leaf must be escaped exactly once, and hl7apy
re-encodes escapes. The mapping engine (``adapters/mapping``) only reads v2 into FHIR, so the
field choices are written down here, one function per segment; ``FIELDS`` in the doc lists them.

    MSH  IVZ-BRIDGE|IVZ -> receiver (Endpoint header or team), ORU^R01^ORU_R01, MSH-10 given
    PID  KVNR (CX with assigning authority 1.2.276.0.76.4.8, type KVZ10), the bridge's
         Patient id (PI), name, birth date, sex
    ORC  RE, placer = the referral, filler = the booking number (``<number>^IVZ``), CM
    OBR  verdict^Second-opinion verdict^IVZOBS, observation and report times, result status
    OBX  CWE: the verdict (``ivz-verdict`` code), OBX-11 F / C (correction) / W (withdrawn),
         OBX-23 the deciding team
    NTE  one per line of the verdict's notes (the rationale, "Amended: ...")
    OBX  TX 18776-5^Plan of care note^LN, one per line of the care plan summary

The builder is total: missing data leaves fields empty, it never raises on content.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.hl7v2.ack import OUR_APPLICATION
from adapters.hl7v2.build import DEFAULT, comp, dtm, encoding_characters, er7, leaf, segment, sub
from fhir_server.pathway.program import APPOINTMENT_SYSTEM, BASE, KVNR_SYSTEM, TEAM_SYSTEM
from fhir_server.pathway.view import OBSERVATION_SYSTEM, VERDICT_SYSTEM

VERSION = "2.5.1"
SENDING_FACILITY = "IVZ"
MESSAGE_TYPE = "ORU^R01^ORU_R01"
KVNR_OID = "1.2.276.0.76.4.8"
GENDER_DE = "http://fhir.de/StructureDefinition/gender-amtlich-de"
#: CWE-3 coding-system names (HL7 table 0396 and mappings/codes/coding-systems.yaml, so that
#: our own intake reads them back); ``IVZVERDICT`` is the program's local name for ivz-verdict.
CODING_SYSTEMS = {
    OBSERVATION_SYSTEM: "IVZOBS",
    f"{BASE}/CodeSystem/ivz-mpss-stage": "IVZMPSS",
    VERDICT_SYSTEM: "IVZVERDICT",
    "http://loinc.org": "LN",
    "http://snomed.info/sct": "SCT",
    "http://fhir.de/CodeSystem/bfarm/ops": "OPS",
    "http://fhir.de/CodeSystem/bfarm/icd-10-gm": "I10GM",
}
#: Readable names of the code systems in the care plan text.
SYSTEM_LABELS = {"SCT": "SNOMED CT", "LN": "LOINC"}
#: The care plan summary's OBX-3 (LOINC "Plan of care note").
PLAN_NOTE = ("18776-5", "Plan of care note", "LN")
VERDICT_CODE = ("verdict", "Second-opinion verdict", "IVZOBS")
#: Patient.gender -> PID-8 (table 0001); the German gender-amtlich-de D/X win when present.
SEX = {"male": "M", "female": "F", "other": "O", "unknown": "U"}
#: FHIR verdict status -> OBX-11/OBR-25 (table 0085).
RESULT_STATUS = {"final": "F", "amended": "C", "corrected": "C", "entered-in-error": "W"}

_LINES = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Receiver:
    """MSH-5/MSH-6 of the receiving system."""

    application: str
    facility: str


@dataclass(frozen=True, slots=True)
class VerdictFacts:
    """What the message reports, as stored (FHIR JSON documents)."""

    verdict: dict[str, Any]
    referral: dict[str, Any]
    patient: dict[str, Any] | None = None
    appointment: dict[str, Any] | None = None
    care_plan: dict[str, Any] | None = None
    surgery: dict[str, Any] | None = None
    performer: dict[str, Any] | None = None  # the deciding team's Organization


def control_id(*key: object) -> str:
    """A stable MSH-10 (20 characters, the v2.5 limit) derived from the outbox row's key:
    the same verdict version to the same endpoint always gets the same one."""
    digest = hashlib.sha256("\x1f".join(str(k) for k in key).encode()).hexdigest()
    return "IVZ" + digest[:17].upper()


def timestamp(value: Any) -> str:
    """A FHIR date/dateTime/instant as HL7 DTM (German local time with offset); partial
    dates keep their precision."""
    if not isinstance(value, str) or not value:
        return ""
    if len(value) <= 10:  # YYYY, YYYY-MM, YYYY-MM-DD
        return value.replace("-", "")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return dtm(parsed)


def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _cwe(concept: Any, prefer: str | None = None) -> str:
    """CWE 1-3 from the coding of ``prefer``'s system (else the first with a known name)."""
    codings = _codings(concept)
    chosen = next((c for c in codings if c.get("system") == prefer), None)
    if chosen is None:
        chosen = next((c for c in codings if c.get("system") in CODING_SYSTEMS), None)
    if chosen is None:
        text = concept.get("text") if isinstance(concept, dict) else None
        return comp("", leaf(text or ""))
    name = CODING_SYSTEMS[str(chosen.get("system"))]
    return comp(leaf(chosen.get("code", "")), leaf(chosen.get("display", "")), name)


def _identifier(resource: dict[str, Any] | None, system: str) -> str | None:
    for ident in (resource or {}).get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


# --- segments ---------------------------------------------------------------------------------


def msh(receiver: Receiver, control: str, when: datetime) -> str:
    return segment(
        "MSH",
        {
            1: encoding_characters(),
            2: OUR_APPLICATION,
            3: SENDING_FACILITY,
            4: leaf(receiver.application),
            5: leaf(receiver.facility),
            6: dtm(when),
            8: MESSAGE_TYPE,
            9: leaf(control),
            10: "P",
            11: VERSION,
            16: "DEU",
            17: "UNICODE UTF-8",
        },
    )


def pid(patient: dict[str, Any] | None) -> str:
    patient = patient or {}
    ids = []
    kvnr = _identifier(patient, KVNR_SYSTEM)
    if kvnr:
        ids.append(comp(leaf(kvnr), "", "", sub("", KVNR_OID, "ISO"), "KVZ10"))
    if patient.get("id"):
        authority = sub("IVZ", f"{BASE}/Patient", "URI")
        ids.append(comp(leaf(patient["id"]), "", "", authority, "PI"))
    return segment(
        "PID",
        {
            1: "1",
            3: DEFAULT.repetition.join(ids),
            5: _name(patient),
            7: timestamp(patient.get("birthDate")),
            8: _sex(patient),
        },
    )


def _name(patient: dict[str, Any]) -> str:
    names = [n for n in patient.get("name") or [] if isinstance(n, dict)]
    if not names:
        return ""
    name = next((n for n in names if n.get("use") == "official"), names[0])
    given = [str(g) for g in name.get("given") or []]
    prefix = " ".join(str(p) for p in name.get("prefix") or [])
    suffix = " ".join(str(s) for s in name.get("suffix") or [])
    family = name.get("family") or ""
    if not family and not given and name.get("text"):
        family = name["text"]
    return comp(
        leaf(family),
        leaf(given[0] if given else ""),
        leaf(" ".join(given[1:])),
        leaf(suffix),
        leaf(prefix),
        "",
        "L" if name.get("use") in (None, "official", "usual") else "",
    )


def _sex(patient: dict[str, Any]) -> str:
    element = patient.get("_gender")
    for ext in element.get("extension") or [] if isinstance(element, dict) else []:
        if isinstance(ext, dict) and ext.get("url") == GENDER_DE:
            code = (ext.get("valueCoding") or {}).get("code")
            if code in ("D", "X"):
                return str(code)
    return SEX.get(str(patient.get("gender")), "")


def _placer(referral: dict[str, Any]) -> str:
    """The referral: its first business identifier (EI with the system as URI), else its id."""
    for ident in referral.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("value"):
            return comp(leaf(ident["value"]), "", leaf(ident.get("system", "")), "URI")
    return comp(leaf(referral.get("id", "")), "IVZ")


def _filler(appointment: dict[str, Any] | None) -> str:
    """The booking number as the clinic quotes it in SCH-1 (``<number>^IVZ``)."""
    number = _identifier(appointment, APPOINTMENT_SYSTEM)
    return comp(leaf(number), "IVZ") if number else ""


def orc(facts: VerdictFacts) -> str:
    return segment(
        "ORC",
        {
            1: "RE",
            2: _placer(facts.referral),
            3: _filler(facts.appointment),
            5: "CM",
            9: timestamp(facts.verdict.get("issued")),
        },
    )


def obr(facts: VerdictFacts, status: str) -> str:
    verdict = facts.verdict
    return segment(
        "OBR",
        {
            1: "1",
            2: _placer(facts.referral),
            3: _filler(facts.appointment),
            4: comp(*VERDICT_CODE),
            7: timestamp(verdict.get("effectiveDateTime")),
            22: timestamp(verdict.get("issued")),
            25: status,
        },
    )


def _performer(facts: VerdictFacts) -> str:
    org = facts.performer or {}
    name = org.get("name")
    if not name:
        refs = [p for p in facts.verdict.get("performer") or [] if isinstance(p, dict)]
        name = refs[0].get("display") if refs else None
    team = _identifier(org, TEAM_SYSTEM)
    if not name and not team:
        return ""
    if not team:
        return comp(leaf(name or ""))
    authority = sub("IVZ", TEAM_SYSTEM, "URI")
    return comp(leaf(name or ""), "", "", "", "", authority, "XX", "", "", leaf(team))


def verdict_obx(facts: VerdictFacts, status: str) -> str:
    verdict = facts.verdict
    return segment(
        "OBX",
        {
            1: "1",
            2: "CWE",
            3: comp(*VERDICT_CODE),
            4: "1",
            5: _cwe(verdict.get("valueCodeableConcept"), VERDICT_SYSTEM),
            11: status,
            14: timestamp(verdict.get("effectiveDateTime")),
            23: _performer(facts),
        },
    )


def lines(text: Any) -> list[str]:
    """Non-empty lines of a text, trailing blanks removed."""
    if not isinstance(text, str):
        return []
    return [line.rstrip() for line in _LINES.split(text) if line.strip()]


def notes(verdict: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for note in verdict.get("note") or []:
        if isinstance(note, dict):
            out += lines(note.get("text"))
    return out


def _concept_text(concept: Any) -> str:
    """'<display> (<system> <code>)' of a CodeableConcept's first named coding, else its text."""
    text = concept.get("text") if isinstance(concept, dict) else None
    for coding in _codings(concept):
        name = CODING_SYSTEMS.get(str(coding.get("system")), "")
        label = SYSTEM_LABELS.get(name, name)
        code = f"{label} {coding.get('code', '')}".strip()
        shown = coding.get("display") or text
        return f"{shown} ({code})" if shown else code
    return str(text or "")


def plan_summary(facts: VerdictFacts) -> list[str]:
    """The care plan as text lines: its title, then one line per activity."""
    plan = facts.care_plan
    if plan is None:
        return []
    out = lines(plan.get("title"))
    for activity in plan.get("activity") or []:
        if not isinstance(activity, dict):
            continue
        detail = activity.get("detail")
        if isinstance(detail, dict) and detail.get("code"):
            out.append(f"- {_concept_text(detail['code'])}")
        elif isinstance(activity.get("reference"), dict):
            surgery = facts.surgery or {}
            what = _concept_text(surgery.get("code")) or activity["reference"].get("reference", "")
            out.append(f"- Proposed surgery: {what}")
    for note in plan.get("note") or []:
        if isinstance(note, dict):
            out += lines(note.get("text"))
    return out


def _text_obx(set_id: int, line: str, status: str) -> str:
    return segment(
        "OBX",
        {
            1: str(set_id),
            2: "TX",
            3: comp(*PLAN_NOTE),
            4: "2",
            5: leaf(line),
            11: status,
        },
    )


def build(
    facts: VerdictFacts, receiver: Receiver, control: str, when: datetime, status: str
) -> bytes:
    """The ORU^R01 as UTF-8 ER7 bytes (segments ended by CR). ``status`` is OBX-11."""
    segments = [msh(receiver, control, when), pid(facts.patient), orc(facts), obr(facts, status)]
    segments.append(verdict_obx(facts, status))
    segments += [
        segment("NTE", {1: str(n), 2: "L", 3: leaf(text)})
        for n, text in enumerate(notes(facts.verdict), 1)
    ]
    if status != "W":
        summary = plan_summary(facts)
        segments += [_text_obx(n, line, status) for n, line in enumerate(summary, 2)]
    return er7(segments)

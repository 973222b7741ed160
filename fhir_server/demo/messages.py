"""HL7 v2 messages a team's clinic system sends: SIU for the visit, ORU for the results.

They are built as a clinic would send them (the KVNR in PID-3 with its OID, LOINC codes,
UCUM units, program codes by coding-system name) and go through the real MLLP intake, so
the demo shows the mappings and the pathway rules that attach results to the case.
Segments, components and DTM come from ``adapters/hl7v2/build.py``, as for the bridge's own
ORU^R01, so both sides write the same bytes for the same values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from adapters.hl7v2.ack import OUR_APPLICATION
from adapters.hl7v2.build import comp, dtm, encoding_characters, er7, segment, sub
from adapters.hl7v2.oru import KVNR_OID, SENDING_FACILITY
from fhir_server.demo.cohort import Case
from fhir_server.pathway.program import BOOKING_NAMESPACE

#: CWE-3 names of the program's CodeSystems ``ivz-observation`` and ``ivz-mpss-stage``
#: (mappings/codes/coding-systems.yaml).
PROGRAM_CODES = "IVZOBS"
MPSS_CODES = "IVZMPSS"


@dataclass(frozen=True, slots=True)
class Message:
    """One HL7 v2 message and the MSH-10 its ACK must echo."""

    control_id: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Visit:
    """The booked appointment as the clinic knows it (from the bridge's booking)."""

    appointment_id: str
    booking_number: str  # the Appointment's identifier in {base}/sid/appointment
    team: str  # team number, e.g. team-07
    team_service: str  # reference to the team's HealthcareService
    start: datetime
    end: datetime


def _msh(visit: Visit, when: datetime, kind: str, control_id: str) -> str:
    return segment(
        "MSH",
        {
            1: encoding_characters(),
            2: "IVZ-TEAM",
            3: visit.team.upper(),
            4: OUR_APPLICATION,  # the bridge, as it names itself in its own messages
            5: SENDING_FACILITY,
            6: dtm(when),
            8: kind,
            9: control_id,
            10: "P",
            11: "2.5",
            16: "DEU",
            17: "UNICODE UTF-8",
        },
    )


def _pid(case: Case) -> str:
    sex = {"w": "F", "m": "M", "d": "D", "x": "X"}[case.sex]  # German D/X: gender-amtlich-de
    kvnr = comp(case.kvnr, "", "", sub("", KVNR_OID, "ISO"), "KVZ10")
    name = comp(case.family, case.given)
    return segment("PID", {1: "1", 3: kvnr, 5: name, 7: f"{case.birth_date:%Y%m%d}", 8: sex})


def siu(case: Case, visit: Visit, event: str, status: str, when: datetime, seq: int) -> Message:
    """SIU^``event`` for the booked appointment with filler status ``status`` (SCH-25).

    SCH-1 quotes the bridge's booking number (``<number>^IVZ``), so the update lands on the
    Appointment the bridge booked (docs/pathway.md); SCH-2 is the clinic's own number.
    """
    minutes = int((visit.end - visit.start).total_seconds() // 60)
    sch = segment(
        "SCH",
        {
            1: comp(visit.booking_number, BOOKING_NAMESPACE),
            2: comp(f"{case.number}-{seq}", visit.team.upper()),
            9: str(minutes),
            10: "min",
            11: comp("", "", "", dtm(visit.start), dtm(visit.end)),
            25: status,
        },
    )
    control_id = f"{case.number}-SIU-{seq}"
    segments = [
        _msh(visit, when, f"SIU^{event}^SIU_S12", control_id),
        sch,
        _pid(case),
    ]
    return Message(control_id, er7(segments))


def oru(case: Case, visit: Visit, when: datetime) -> Message:
    """ORU^R01 with the assessment: instruments and examination findings."""
    f = case.findings
    at = dtm(visit.start)
    order = f"{case.number}-A"
    control_id = f"{case.number}-ORU-1"
    yes_no = {True: "Y^Yes^HL70136", False: "N^No^HL70136"}
    results = [
        ("NM", "72514-3^Pain severity - 0-10 verbal numeric rating [Score] - Reported^LN",
         str(f.nrs), "{score}^^UCUM"),
        ("NM", "97909-6^Oswestry Disability Index [ODI]^LN", str(f.odi), "%^^UCUM"),
        ("NM", "44261-6^Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]^LN",
         str(f.phq9), "{score}^^UCUM"),
        ("NM", "70274-6^Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]^LN",
         str(f.gad7), "{score}^^UCUM"),
        ("CWE", f"mpss-stage^Chronifizierungsstadium (MPSS)^{PROGRAM_CODES}",
         f"{f.mpss}^Stadium {f.mpss}^{MPSS_CODES}", ""),
        ("CWE", f"exam-neuro-deficit^Neurologisches Defizit^{PROGRAM_CODES}",
         yes_no[f.neuro_deficit], ""),
        ("CWE", f"exam-lasegue^Lasègue-Zeichen^{PROGRAM_CODES}", yes_no[f.lasegue], ""),
        ("NM", f"exam-finger-floor^Finger-Boden-Abstand^{PROGRAM_CODES}",
         str(f.finger_floor_cm), "cm^^UCUM"),
        ("TX", f"exam-summary^Befund der körperlichen Untersuchung^{PROGRAM_CODES}",
         _summary(case), ""),
    ]  # fmt: skip
    segments = [
        _msh(visit, when, "ORU^R01^ORU_R01", control_id),
        _pid(case),
        segment(
            "OBR",
            {
                1: "1",
                2: comp(order, visit.team.upper()),
                3: comp(order, visit.team.upper()),
                4: "ZM-ASSESS^Interdisziplinäres Assessment^L",
                7: at,
                22: dtm(when),
                25: "F",
            },
        ),
    ]
    segments += [
        segment("OBX", {1: str(i), 2: kind, 3: code, 5: value, 6: units, 11: "F", 14: at})
        for i, (kind, code, value, units) in enumerate(results, start=1)
    ]
    return Message(control_id, er7(segments))


def _summary(case: Case) -> str:
    f = case.findings
    deficit = "motorisches Defizit L5" if f.neuro_deficit else "kein sensomotorisches Defizit"
    return (
        f"Lumbale Schmerzen NRS {f.nrs}/10, {deficit}, Lasègue "
        f"{'positiv' if f.lasegue else 'negativ'}, FBA {f.finger_floor_cm} cm"
    )

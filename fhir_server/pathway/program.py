"""The program's canonical URLs, identifier systems and codes (docs/pathway.md, "Codes")."""

from __future__ import annotations

BASE = "https://ivz-bridge.example/fhir"
VERSION = "1.0.0"

TEAM_SYSTEM = f"{BASE}/sid/team"
APPOINTMENT_SYSTEM = f"{BASE}/sid/appointment"
#: SCH-1 namespace a clinic quotes with the booking number (``<number>^IVZ``).
BOOKING_NAMESPACE = "IVZ"

EXT_DEADLINE = f"{BASE}/StructureDefinition/ivz-booking-deadline"
EXT_WITHIN_48H = f"{BASE}/StructureDefinition/ivz-booking-within-48h"

SNOMED = "http://snomed.info/sct"
V2_0336 = "http://terminology.hl7.org/CodeSystem/v2-0336"
SERVICE_TYPE = "http://terminology.hl7.org/CodeSystem/service-type"
KVNR_SYSTEM = "http://fhir.de/sid/gkv/kvid-10"

REFERRAL_CATEGORY = (SNOMED, "3457005")
SECOND_OPINION_REASON = (V2_0336, "S")
CONSULTATION_CODE = (SNOMED, "11429006")

MULTIDISCIPLINARY = {"system": SERVICE_TYPE, "code": "503", "display": "Multidisciplinary"}
PAIN_MEDICINE = {"system": SERVICE_TYPE, "code": "164", "display": "Pain Medicine"}

#: Appointment statuses that count as a live booking of a referral.
LIVE_APPOINTMENT = ("booked", "arrived", "fulfilled", "pending", "proposed")
#: Referral statuses of a case that is still open (assessments may attach).
OPEN_REFERRAL = ("draft", "active", "on-hold")


def profile(profile_id: str) -> str:
    """The canonical URL of one of the program's StructureDefinitions."""
    return f"{BASE}/StructureDefinition/{profile_id}"

"""The synthetic cohort: who is referred, when, for what, and how their assessment turns out.

Only the *inputs* of the pathway are drawn here (demographics, codes, consent, findings, the
team's decision). Every figure the demo prints is computed afterwards from the stored
resources, so this module's parameters are never reported as results.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from adapters.insurer.validators import ik_check_digit, kvnr_check_digit, lanr_check_digit

BERLIN = ZoneInfo("Europe/Berlin")
#: Case numbers of the demo: the marker a second run looks for.
CASE_PREFIX = "IVZ-DEMO-"
INSURER_IK = "101575519"
INSURER_NAME = "Techniker Krankenkasse"

#: Published interim results of the program (first 220 patients) that shape the cohort.
AGE_MEAN, AGE_SD = 57.6, 14.2
FEMALE_SHARE = 0.438
DIVERSE_SHARE = 0.01
CONSENT_REFUSED_SHARE = 0.02
NO_SHOW_SHARE = 0.04
NEURO_DEFICIT_SHARE = 0.15
#: P(surgery confirmed | neurological deficit) and otherwise: about 10.9% overall.
CONFIRM_IF_DEFICIT, CONFIRM_OTHERWISE = 0.45, 0.049

SPINE_DIAGNOSES = ["M54.5", "M54.4", "M51.1", "M51.2", "M48.06", "M48.07", "M53.26"]
#: Chronic pain disorder with somatic and psychological factors (with MPSS stage III).
CHRONIC_PAIN_DISORDER = "F45.41"
#: Proposed spine surgeries (OPS) with their German short texts.
SURGERIES = [
    ("5-836.30", "Spondylodese: Dorsal: 1 Segment"),
    ("5-836.31", "Spondylodese: Dorsal: 2 Segmente"),
    ("5-832.4", "Exzision von erkranktem Knochengewebe der Wirbelsäule: Arthrektomie"),
    ("5-839.60", "Knöcherne Dekompression des Spinalkanals: 1 Segment"),
    ("5-831.0", "Exzision von erkranktem Bandscheibengewebe: Exzision einer Bandscheibe"),
    ("5-831.2", "Exzision von erkranktem Bandscheibengewebe: mit Radikulodekompression"),
    ("5-83b.50", "Osteosynthese (dynamische Stabilisierung) an der Wirbelsäule"),
]


@dataclass(frozen=True, slots=True)
class Findings:
    """What the team's assessment finds (sent by the clinic as ORU results)."""

    nrs: int
    odi: int
    phq9: int
    gad7: int
    mpss: str
    neuro_deficit: bool
    lasegue: bool
    finger_floor_cm: int


@dataclass(frozen=True, slots=True)
class Case:
    """One referred member, as the insurer exports them, plus how their case will go."""

    number: str
    received: datetime
    kvnr: str
    family: str
    given: str
    birth_date: date
    sex: str  # m, w, d, x (the TK export's codes)
    postal_code: str
    city: str
    diagnoses: tuple[str, ...]
    ops: str
    ops_text: str
    hospital_ik: str
    hospital_name: str
    surgeon_lanr: str
    surgeon_name: str
    surgery_date: date
    consent: str  # ja / nein
    no_show: bool
    findings: Findings
    confirmed: bool
    phone: str = ""
    email: str = ""


def _data() -> dict[str, Any]:
    raw = resources.files("fhir_server.data").joinpath("demo/cohort.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(raw)
    return data


def _kvnr(rng: random.Random, taken: set[str]) -> str:
    while True:
        first = chr(ord("A") + rng.randrange(26)) + f"{rng.randrange(10**8):08d}"
        value = f"{first}{kvnr_check_digit(first)}"
        if value not in taken:
            taken.add(value)
            return value


def hospital_ik(index: int) -> str:
    """A valid IK (class 26: hospitals) for the demo's hospital ``index``."""
    first = f"26{(index * 7919 + 104729) % 1_000_000:06d}"
    return f"{first}{ik_check_digit(first)}"


def _receipts(rng: random.Random, n: int, first: date, last: date) -> list[datetime]:
    """Receipt times on working days in office hours (Berlin), sorted."""
    days = [first + timedelta(d) for d in range((last - first).days + 1)]
    days = [d for d in days if d.weekday() < 5] or [first]
    out = []
    for _ in range(n):
        day = rng.choice(days)
        minute = rng.randrange(8 * 60, 17 * 60)
        local = datetime.combine(day, time(minute // 60, minute % 60), BERLIN)
        out.append(local)
    return sorted(out)


def _clip(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def _findings(rng: random.Random) -> Findings:
    deficit = rng.random() < NEURO_DEFICIT_SHARE
    mpss = rng.choices(["I", "II", "III"], [0.2, 0.45, 0.35])[0]
    stage = {"I": 0, "II": 1, "III": 2}[mpss]
    return Findings(
        nrs=_clip(rng.gauss(5.8 + 0.5 * stage, 1.5), 1, 10),
        odi=_clip(rng.gauss(34 + 7 * stage + (8 if deficit else 0), 13), 4, 92),
        phq9=_clip(rng.gauss(6 + 3 * stage, 4), 0, 27),
        gad7=_clip(rng.gauss(5 + 2 * stage, 3.5), 0, 21),
        mpss=mpss,
        neuro_deficit=deficit,
        lasegue=rng.random() < (0.7 if deficit else 0.25),
        finger_floor_cm=_clip(rng.gauss(25 + 5 * stage, 12), 0, 60),
    )


def generate(n: int, seed: int, first: date, last: date) -> list[Case]:
    """``n`` referrals received between ``first`` and ``last`` (inclusive), reproducibly."""
    rng = random.Random(seed)
    data = _data()
    taken: set[str] = set()
    # Their own stream: the same seed gives the same people whatever the calendar.
    receipts = _receipts(random.Random(f"receipts-{seed}"), n, first, last)
    return [_case(rng, data, i, r, taken) for i, r in enumerate(receipts, start=1)]


def _case(
    rng: random.Random, data: dict[str, Any], i: int, received: datetime, taken: set[str]
) -> Case:
    roll = rng.random()
    sex = "w" if roll < FEMALE_SHARE else "d" if roll < FEMALE_SHARE + DIVERSE_SHARE else "m"
    given = rng.choice(data["given"][{"w": "female", "d": "neutral"}.get(sex, "male")])
    family = rng.choice(data["family"])
    age = _clip(rng.gauss(AGE_MEAN, AGE_SD), 18, 90)
    places = data["places"]
    place = rng.choices(places, [p["weight"] for p in places])[0]
    h = rng.randrange(len(data["hospitals"]))
    surgeon = (h * 3 + rng.randrange(2)) % len(data["surgeons"])
    findings = _findings(rng)
    diagnoses = rng.sample(SPINE_DIAGNOSES, rng.choice([1, 1, 2, 2, 3]))
    if findings.mpss == "III" and rng.random() < 0.5:
        diagnoses.append(CHRONIC_PAIN_DISORDER)
    p_confirm = CONFIRM_IF_DEFICIT if findings.neuro_deficit else CONFIRM_OTHERWISE
    ops, ops_text = rng.choice(SURGERIES)
    return Case(
        number=f"{CASE_PREFIX}{i:04d}",
        received=received,
        kvnr=_kvnr(rng, taken),
        family=family,
        given=given,
        birth_date=received.date() - timedelta(days=age * 365 + rng.randrange(365)),
        sex=sex,
        postal_code=place["postalCode"],
        city=place["city"],
        diagnoses=tuple(diagnoses),
        ops=ops,
        ops_text=ops_text,
        hospital_ik=hospital_ik(h),
        hospital_name=data["hospitals"][h]["name"],
        surgeon_lanr=_lanr(surgeon),
        surgeon_name=data["surgeons"][surgeon],
        surgery_date=received.date() + timedelta(days=rng.randrange(21, 70)),
        consent="nein" if rng.random() < CONSENT_REFUSED_SHARE else "ja",
        no_show=rng.random() < NO_SHOW_SHARE,
        findings=findings,
        confirmed=rng.random() < p_confirm,
        phone=f"0{rng.randrange(30, 990)} {rng.randrange(100000, 9999999)}"
        if rng.random() < 0.7
        else "",
        email=_email(given, family, rng) if rng.random() < 0.4 else "",
    )


def _email(given: str, family: str, rng: random.Random) -> str:
    plain = f"{given}.{family}".lower()
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"), ("ş", "s"), ("\u0131", "i")):
        plain = plain.replace(a, b)
    plain = "".join(c for c in plain if c.isascii() and (c.isalnum() or c == "."))
    return f"{plain}{rng.randrange(100)}@example.de"


def _lanr(surgeon: int) -> str:
    """A well-formed LANR per surgeon: six digits, the check digit, specialty group 10."""
    first_six = f"{(surgeon * 7_654_321 + 123_456) % 10**6:06d}"
    return f"{first_six}{lanr_check_digit(first_six)}10"

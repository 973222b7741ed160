"""The spine second-opinion data set and the helpers that search it.

Every resource has the id ``sa-<name>`` and carries the run tag ``urn:ivz:test|<run>``; the
tests name resources by ``<name>`` (ids are unique across types: ``erika``, ``cond-1``,
``sr-4``, ``pain-3`` ...). The data set is written once per server with one transaction
Bundle of PUT entries whose fullUrls are ``urn:uuid:`` and whose references point at them.

Summary of the data (dates as written in the resources):

Patients      family         given          gender  birthDate   KVNR        managingOrg
  erika       Müller         Erika          female  1968-04-12  A123456780  org-ukh
  hans        Mueller        Hans Peter     male    1955        B234567891  org-mvz
  anna        Weiss          Anna           female  1972-11     C345678902  org-ukh
  bernd       Weiß           Bernd          male    1980-02-29  D456789013  org-mvz
  juergen     Schäfer        Jürgen         male    1949-07-01  E567890124  org-ukh (deceased)
  ayse        Özdemir        Ayşe           female  1990-03-15  F678901235  org-mvz
  sabine      König/Krämer   Sabine         female  1961        G789012346  org-mvz2
  klaus       Fischer-Lange  Klaus          male    -           H890123457  -
  maria       Schmitz        Maria Theresia female  2001-09-30  (MR only)   org-ukh
  lan         Nguyen         Thi Lan        -       1985-06-15  J901234568  org-ukh
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

ICD = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
OPS = "http://fhir.de/CodeSystem/bfarm/ops"
KVID = "http://fhir.de/sid/gkv/kvid-10"
IKNR = "http://fhir.de/sid/arge-ik/iknr"
LANR = "https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
IDTYPE_DE = "http://fhir.de/CodeSystem/identifier-type-de-basis"
CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
LEISTUNG = "urn:ivz:leistung"
AUFTRAG = "urn:ivz:auftrag"
COHORT = "urn:ivz:cohort"
TEST_SYSTEM = "urn:ivz:test"
PROFILE = "https://ivz.example/fhir/StructureDefinition/ivz-patient"
KIS = "https://kis.ukh.example/fhir"
ADAPTER = "urn:ivz:adapter:orthos"
NVL = "https://ivz.example/leitlinien/nvl-kreuzschmerz"
PREFIX = "sa-"
FHIR_JSON = "application/fhir+json"


def rid(name: str) -> str:
    """The server id of a data set resource."""
    return PREFIX + name


def urn(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'ivz-search-api/' + name)}"


def ref(name: str) -> dict[str, str]:
    return {"reference": urn(name)}


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(*codings: dict[str, str], text: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if codings:
        out["coding"] = list(codings)
    if text:
        out["text"] = text
    return out


def kvnr(value: str) -> dict[str, Any]:
    return {
        "use": "official",
        "type": concept(coding(IDTYPE_DE, "GKV")),
        "system": KVID,
        "value": value,
    }


def ucum(value: float | int, code: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit or code, "system": UCUM, "code": code}


class DataSet:
    """Builds the resources for one run; ``tag`` marks every one of them."""

    def __init__(self, run: str) -> None:
        self.run = run
        self.tag = f"{TEST_SYSTEM}|{run}"
        self.resources: list[tuple[str, dict[str, Any]]] = []

    def add(
        self,
        name: str,
        resource: dict[str, Any],
        *,
        tags: tuple[tuple[str, str], ...] = (),
        profile: str | None = None,
        source: str | None = None,
        security: tuple[str, str] | None = None,
    ) -> None:
        meta: dict[str, Any] = {
            "tag": [coding(TEST_SYSTEM, self.run), *(coding(s, c) for s, c in tags)]
        }
        if profile:
            meta["profile"] = [profile]
        if source:
            meta["source"] = source
        if security:
            meta["security"] = [coding(*security)]
        self.resources.append((name, {**resource, "meta": meta}))

    def bundle(self) -> dict[str, Any]:
        entries = []
        for name, resource in self.resources:
            rtype = resource["resourceType"]
            entries.append(
                {
                    "fullUrl": urn(name),
                    "resource": {**resource, "id": rid(name)},
                    "request": {"method": "PUT", "url": f"{rtype}/{rid(name)}"},
                }
            )
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def patient(
    family: str,
    given: list[str],
    gender: str | None,
    birth: str | None,
    ident: dict[str, Any] | None,
    org: str | None,
    city: str,
    postal: str,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": family, "given": given}],
        "address": [{"use": "home", "city": city, "postalCode": postal, "country": "DE"}],
    }
    if ident:
        out["identifier"] = [ident]
    if gender:
        out["gender"] = gender
    if birth:
        out["birthDate"] = birth
    if org:
        out["managingOrganization"] = ref(org)
    out.update(extra)
    return out


def build(run: str) -> DataSet:
    ds = DataSet(run)
    pilot, control = (COHORT, "pilot"), (COHORT, "control")

    # --- Organizations -----------------------------------------------------------------
    def org(name: str, ik: str, kind: str, active: bool, city: str, **extra: Any) -> dict:
        return {
            "resourceType": "Organization",
            "identifier": [{"system": IKNR, "value": ik}],
            "active": active,
            "type": [
                concept(coding("http://terminology.hl7.org/CodeSystem/organization-type", kind))
            ],
            "name": name,
            "address": [{"city": city, "country": "DE"}],
            **extra,
        }

    ds.add(
        "org-ukh", org("Universitätsklinikum Heidelberg", "260820028", "prov", True, "Heidelberg")
    )
    ds.add(
        "org-mvz",
        org(
            "MVZ Rückenzentrum Nord, Standort Hamburg",
            "260200013",
            "prov",
            True,
            "Hamburg",
            partOf=ref("org-ukh"),
        ),
    )
    ds.add(
        "org-mvz2",
        org(
            "MVZ Rückenzentrum Nordheide",
            "260300014",
            "prov",
            False,
            "Buchholz",
            partOf=ref("org-mvz"),
        ),
    )
    ds.add("org-kk", org("AOK Baden-Württemberg", "108018007", "ins", True, "Stuttgart"))

    # --- Practitioners -----------------------------------------------------------------
    def prac(family: str, given: str, prefix: str | None, gender: str, lanr: str, active: bool):
        name: dict[str, Any] = {"family": family, "given": [given]}
        if prefix:
            name["prefix"] = [prefix]
        return {
            "resourceType": "Practitioner",
            "identifier": [{"system": LANR, "value": lanr}],
            "active": active,
            "name": [name],
            "gender": gender,
        }

    ds.add("prac-schmidt", prac("Schmidt", "Johanna", "Dr. med.", "female", "123456601", True))
    ds.add("prac-oezdemir", prac("Özdemir", "Mehmet", "Prof. Dr. med.", "male", "234567801", True))
    ds.add("prac-becker", prac("Becker", "Lukas", None, "male", "345678901", False))

    # --- Patients ----------------------------------------------------------------------
    ds.add(
        "erika",
        patient(
            "Müller",
            ["Erika"],
            "female",
            "1968-04-12",
            kvnr("A123456780"),
            "org-ukh",
            "Heidelberg",
            "69117",
            active=True,
            generalPractitioner=[ref("prac-schmidt")],
            telecom=[
                {"system": "phone", "value": "+49 6221 123456"},
                {"system": "email", "value": "erika.mueller@example.de"},
            ],
        ),
        tags=(pilot,),
        profile=PROFILE,
        source=KIS,
    )
    ds.resources[-1][1]["address"][0]["line"] = ["Hauptstraße 12"]
    ds.add(
        "hans",
        patient(
            "Mueller",
            ["Hans", "Peter"],
            "male",
            "1955",
            kvnr("B234567891"),
            "org-mvz",
            "Hamburg",
            "20097",
            active=True,
            generalPractitioner=[ref("prac-oezdemir")],
        ),
        tags=(pilot,),
        profile=PROFILE,
        source=ADAPTER,
    )
    ds.add(
        "anna",
        patient(
            "Weiss",
            ["Anna"],
            "female",
            "1972-11",
            kvnr("C345678902"),
            "org-ukh",
            "München",
            "80331",
            active=True,
        ),
        source=KIS,
    )
    ds.add(
        "bernd",
        patient(
            "Weiß",
            ["Bernd"],
            "male",
            "1980-02-29",
            kvnr("D456789013"),
            "org-mvz",
            "München",
            "80333",
            active=False,
        ),
        tags=(control,),
    )
    ds.add(
        "juergen",
        patient(
            "Schäfer",
            ["Jürgen"],
            "male",
            "1949-07-01",
            kvnr("E567890124"),
            "org-ukh",
            "Heidelberg",
            "69120",
            deceasedDateTime="2025-12-24T08:30:00+01:00",
        ),
    )
    ds.add(
        "ayse",
        patient(
            "Özdemir",
            ["Ayşe"],
            "female",
            "1990-03-15",
            kvnr("F678901235"),
            "org-mvz",
            "Hamburg",
            "22765",
            active=True,
            deceasedBoolean=False,
            communication=[{"language": concept(coding("urn:ietf:bcp:47", "tr", "Türkisch"))}],
        ),
    )
    sabine = patient(
        "König",
        ["Sabine"],
        "female",
        "1961",
        kvnr("G789012346"),
        "org-mvz2",
        "Köln",
        "50667",
        active=True,
    )
    sabine["name"].append({"use": "maiden", "family": "Krämer"})
    ds.add("sabine", sabine, tags=(pilot,))
    ds.add(
        "klaus",
        patient(
            "Fischer-Lange",
            ["Klaus"],
            "male",
            None,
            kvnr("H890123457"),
            None,
            "Köln",
            "50668",
            active=True,
        ),
    )
    ds.add(
        "maria",
        patient(
            "Schmitz",
            ["Maria", "Theresia"],
            "female",
            "2001-09-30",
            {
                "type": concept(coding(V2_0203, "MR")),
                "system": "https://kis.ukh.example/sid/patient",
                "value": "MRN-0042",
            },
            "org-ukh",
            "Heidelberg",
            "69115",
        ),
    )
    ds.add(
        "lan",
        patient(
            "Nguyen",
            ["Thi", "Lan"],
            None,
            "1985-06-15",
            kvnr("J901234568"),
            "org-ukh",
            "Mannheim",
            "68159",
        ),
        security=(CONFIDENTIALITY, "R"),
    )

    # --- Conditions --------------------------------------------------------------------
    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    verification = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
    category = "http://terminology.hl7.org/CodeSystem/condition-category"
    lumbar = concept(coding(SNOMED, "122496007", "Lumbar spine structure"))

    def cond(
        who: str,
        code: dict[str, Any],
        status: str,
        verified: str,
        cat: str,
        recorded: str,
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "resourceType": "Condition",
            "clinicalStatus": concept(coding(clinical, status)),
            "verificationStatus": concept(coding(verification, verified)),
            "category": [concept(coding(category, cat))],
            "code": code,
            "subject": ref(who),
            "recordedDate": recorded,
            **extra,
        }

    def icd(code: str, display: str) -> dict[str, str]:
        return {"system": ICD, "version": "2026", "code": code, "display": display}

    m512 = concept(icd("M51.2", "Sonstige näher bezeichnete Bandscheibenverlagerung"))
    m545 = icd("M54.5", "Kreuzschmerz")
    ds.add(
        "cond-1",
        cond(
            "erika",
            m512,
            "active",
            "confirmed",
            "encounter-diagnosis",
            "2025-10-15",
            onsetDateTime="2025-09",
            asserter=ref("prac-schmidt"),
            bodySite=[lumbar],
        ),
    )
    ds.add(
        "cond-2",
        cond(
            "erika",
            concept(m545),
            "active",
            "confirmed",
            "problem-list-item",
            "2025-10-15",
            onsetDateTime="2024",
        ),
    )
    ds.add(
        "cond-3",
        cond(
            "hans",
            concept(icd("M48.06", "Spinal(kanal)stenose: Lumbalbereich")),
            "active",
            "confirmed",
            "encounter-diagnosis",
            "2025-11-03",
            onsetPeriod={"start": "2025-06-01"},
            asserter=ref("prac-oezdemir"),
            bodySite=[lumbar],
        ),
    )
    ds.add(
        "cond-4",
        cond(
            "anna",
            m512,
            "resolved",
            "confirmed",
            "encounter-diagnosis",
            "2025-01-20",
            onsetDateTime="2024-11-20",
            abatementDateTime="2025-06-30",
        ),
    )
    ds.add(
        "cond-5",
        cond(
            "bernd",
            concept(icd("M47.26", "Sonstige Spondylose mit Radikulopathie: Lumbalbereich")),
            "active",
            "provisional",
            "encounter-diagnosis",
            "2026-01-08T10:15:00+01:00",
            asserter=ref("prac-schmidt"),
        ),
    )
    ds.add(
        "cond-6",
        cond(
            "juergen",
            concept(icd("M54.4", "Lumboischialgie")),
            "inactive",
            "confirmed",
            "problem-list-item",
            "2025-12-01",
        ),
    )
    ds.add(
        "cond-7",
        cond(
            "ayse",
            concept(
                m545,
                coding(SNOMED, "279039007", "Low back pain"),
                text="Chronischer Kreuzschmerz",
            ),
            "active",
            "confirmed",
            "problem-list-item",
            "2025-12-20",
        ),
    )
    ds.add(
        "cond-8",
        cond(
            "sabine",
            concept(icd("M43.16", "Spondylolisthesis: Lumbalbereich")),
            "active",
            "confirmed",
            "encounter-diagnosis",
            "2026-02-02",
            asserter=ref("prac-oezdemir"),
        ),
    )
    ds.add(
        "cond-9",
        cond(
            "klaus",
            concept(text="Unklare Rückenschmerzen"),
            "active",
            "unconfirmed",
            "encounter-diagnosis",
            "2026-03-01",
        ),
        security=(CONFIDENTIALITY, "R"),
    )
    ds.add(
        "cond-10",
        cond(
            "maria",
            concept(icd("M41.15", "Juvenile idiopathische Skoliose: Thorakolumbalbereich")),
            "active",
            "confirmed",
            "encounter-diagnosis",
            "2025-08",
        ),
    )

    # --- ServiceRequests ---------------------------------------------------------------
    zm = concept(coding(LEISTUNG, "ZM", "Zweitmeinungsverfahren Wirbelsäule"))

    def ops(code: str, display: str, text: str | None = None) -> dict[str, Any]:
        return concept(coding(OPS, code, display), text=text)

    def sr(
        who: str,
        status: str,
        intent: str,
        code: dict[str, Any],
        authored: str,
        requester: str,
        **extra: Any,
    ) -> dict[str, Any]:
        return {
            "resourceType": "ServiceRequest",
            "status": status,
            "intent": intent,
            "code": code,
            "subject": ref(who),
            "authoredOn": authored,
            "requester": ref(requester),
            **extra,
        }

    disc = ops(
        "5-831.0",
        "Exzision von erkranktem Bandscheibengewebe: Exzision einer Bandscheibe",
        "Bandscheiben-OP L4/L5",
    )
    decomp = ops("5-839.60", "Knöcherne Dekompression des Spinalkanals: 1 Segment")
    fusion = ops("5-836.30", "Spondylodese: Dorsal: 1 Segment")
    ds.add(
        "sr-1",
        sr(
            "erika",
            "active",
            "proposal",
            disc,
            "2025-10-20T09:15:00+02:00",
            "prac-schmidt",
            identifier=[{"system": AUFTRAG, "value": "SR-2025-0001"}],
            performer=[ref("org-ukh")],
            reasonReference=[ref("cond-1")],
            priority="routine",
        ),
    )
    ds.add(
        "sr-2",
        sr(
            "erika",
            "completed",
            "order",
            zm,
            "2025-10-22",
            "prac-schmidt",
            basedOn=[ref("sr-1")],
            performer=[ref("prac-oezdemir")],
            reasonReference=[ref("cond-1")],
            priority="routine",
        ),
    )
    ds.add(
        "sr-3",
        sr(
            "hans",
            "active",
            "proposal",
            decomp,
            "2025-11-05T14:00:00+01:00",
            "prac-becker",
            performer=[ref("org-mvz")],
            reasonReference=[ref("cond-3")],
            priority="urgent",
        ),
    )
    ds.add(
        "sr-4",
        sr(
            "hans",
            "active",
            "order",
            zm,
            "2025-11-10",
            "prac-becker",
            basedOn=[ref("sr-3")],
            performer=[ref("prac-oezdemir")],
            priority="urgent",
        ),
    )
    ds.add(
        "sr-5",
        sr("bernd", "on-hold", "proposal", fusion, "2026-01-10T08:00:00+01:00", "prac-schmidt"),
    )
    ds.add(
        "sr-6",
        sr(
            "bernd",
            "draft",
            "order",
            zm,
            "2026-01-12",
            "prac-schmidt",
            basedOn=[ref("sr-5")],
            performer=[ref("prac-schmidt")],
        ),
    )
    ds.add(
        "sr-7",
        sr(
            "sabine",
            "active",
            "proposal",
            fusion,
            "2026-02-03",
            "prac-oezdemir",
            reasonReference=[ref("cond-8")],
            # a logical reference: only the IK number of the performing MVZ is known
            performer=[
                {
                    "identifier": {"system": IKNR, "value": "260200013"},
                    "display": "MVZ Rückenzentrum Nord",
                }
            ],
        ),
    )
    ds.add(
        "sr-8",
        sr(
            "sabine",
            "revoked",
            "order",
            ops("8-910", "Epidurale Injektion und Infusion zur Schmerztherapie"),
            "2026-02-05",
            "prac-oezdemir",
            basedOn=[ref("sr-7")],
        ),
    )
    ds.add(
        "sr-9",
        sr(
            "ayse",
            "completed",
            "order",
            ops("1-205", "Elektromyographie (EMG)"),
            "2025-12-01",
            "prac-becker",
            identifier=[{"system": AUFTRAG, "value": "SR|2025|0009"}],
            performer=[ref("org-mvz")],
        ),
    )
    ds.add(
        "sr-10",
        sr("juergen", "entered-in-error", "proposal", decomp, "2025-12-02", "prac-becker"),
    )

    # --- Appointments ------------------------------------------------------------------
    v2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"

    def appt(
        status: str,
        start: str,
        end: str,
        people: list[tuple[str, str]],
        based_on: str | None = None,
        kind: str | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resourceType": "Appointment",
            "status": status,
            "start": start,
            "end": end,
            "participant": [{"actor": ref(who), "status": how} for who, how in people],
        }
        if based_on:
            out["basedOn"] = [ref(based_on)]
        if kind:
            out["appointmentType"] = concept(coding(v2_0276, kind))
        return out

    ds.add(
        "appt-1",
        appt(
            "booked",
            "2025-11-03T10:00:00+01:00",
            "2025-11-03T10:30:00+01:00",
            [("erika", "accepted"), ("prac-oezdemir", "accepted")],
            "sr-2",
            "ROUTINE",
        ),
    )
    ds.add(
        "appt-2",
        appt(
            "fulfilled",
            "2025-11-20T14:00:00+01:00",
            "2025-11-20T14:45:00+01:00",
            [("hans", "accepted"), ("prac-oezdemir", "accepted")],
            "sr-4",
            "ROUTINE",
        ),
    )
    ds.add(
        "appt-3",
        appt(
            "cancelled",
            "2025-11-18T08:00:00Z",
            "2025-11-18T08:30:00Z",
            [("hans", "declined"), ("prac-oezdemir", "accepted")],
            "sr-4",
        ),
    )
    ds.add(
        "appt-4",
        appt(
            "proposed",
            "2026-02-15T09:00:00+01:00",
            "2026-02-15T09:30:00+01:00",
            [("bernd", "needs-action"), ("prac-schmidt", "accepted")],
            "sr-6",
            "FOLLOWUP",
        ),
    )
    ds.add(
        "appt-5",
        appt(
            "noshow",
            "2026-01-05T11:00:00+01:00",
            "2026-01-05T11:20:00+01:00",
            [("ayse", "accepted"), ("prac-becker", "accepted")],
        ),
    )
    ds.add(
        "appt-6",
        appt(
            "booked",
            "2026-03-02T13:30:00+01:00",
            "2026-03-02T14:00:00+01:00",
            [("sabine", "accepted"), ("prac-oezdemir", "tentative")],
            "sr-7",
            "ROUTINE",
        ),
    )

    # --- Observations ------------------------------------------------------------------
    obs_cat = "http://terminology.hl7.org/CodeSystem/observation-category"
    pain = concept(
        coding(LOINC, "72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")
    )
    odi = concept(coding(LOINC, "97909-6", "Oswestry Disability Index [ODI]"))

    def obs(who: str, status: str, code: dict[str, Any], cat: str, **extra: Any) -> dict[str, Any]:
        return {
            "resourceType": "Observation",
            "status": status,
            "category": [concept(coding(obs_cat, cat))],
            "code": code,
            "subject": ref(who),
            **extra,
        }

    def performers(*names: str) -> list[dict[str, str]]:
        return [ref(n) for n in names]

    ds.add(
        "pain-1",
        obs(
            "erika",
            "final",
            pain,
            "survey",
            effectiveDateTime="2025-10-15T09:00:00+02:00",
            performer=performers("prac-schmidt"),
            valueInteger=7,
        ),
    )
    ds.add(
        "pain-2",
        obs(
            "erika",
            "final",
            pain,
            "survey",
            basedOn=[ref("sr-2")],
            effectiveDateTime="2025-12-01T09:00:00+01:00",
            performer=performers("erika"),
            valueQuantity=ucum(5, "{score}", "score"),
        ),
    )
    ds.add(
        "pain-3",
        obs(
            "hans",
            "final",
            pain,
            "survey",
            basedOn=[ref("sr-4")],
            effectivePeriod={"start": "2025-11-01", "end": "2025-11-07"},
            performer=performers("prac-oezdemir"),
            valueQuantity=ucum(8, "{score}", "score"),
        ),
    )
    ds.add(
        "pain-4",
        obs(
            "bernd",
            "preliminary",
            pain,
            "survey",
            effectiveDateTime="2026-01-08",
            performer=performers("prac-schmidt"),
            valueQuantity=ucum(3, "{score}", "score"),
        ),
    )
    ds.add(
        "pain-5",
        obs(
            "ayse",
            "final",
            pain,
            "survey",
            effectiveDateTime="2026-01-05T11:20:00+01:00",
            performer=performers("prac-becker"),
            valueInteger=9,
        ),
    )
    ds.add(
        "pain-6",
        obs(
            "juergen",
            "cancelled",
            pain,
            "survey",
            effectiveDateTime="2025-12-01",
            dataAbsentReason=concept(
                coding("http://terminology.hl7.org/CodeSystem/data-absent-reason", "asked-unknown")
            ),
        ),
    )
    ds.add(
        "odi-1",
        obs(
            "erika",
            "final",
            odi,
            "survey",
            effectiveDateTime="2025-10-15T09:10:00+02:00",
            performer=performers("prac-schmidt"),
            valueQuantity=ucum(42, "%"),
        ),
    )
    ds.add(
        "odi-2",
        obs(
            "hans",
            "final",
            odi,
            "survey",
            basedOn=[ref("sr-4")],
            effectivePeriod={
                "start": "2025-11-01T08:00:00+01:00",
                "end": "2025-11-03T18:00:00+01:00",
            },
            performer=performers("prac-oezdemir"),
            valueQuantity=ucum(56, "%"),
        ),
    )
    ds.add(
        "odi-3",
        obs(
            "sabine",
            "amended",
            odi,
            "survey",
            effectivePeriod={"start": "2026-01-20", "end": "2026-02-10"},
            performer=performers("prac-oezdemir"),
            valueQuantity=ucum(28.5, "%"),
        ),
    )
    bp = concept(coding(LOINC, "85354-9", "Blood pressure panel with all children optional"))

    def bp_components(systolic: int, diastolic: int) -> list[dict[str, Any]]:
        return [
            {
                "code": concept(coding(LOINC, "8480-6", "Systolic blood pressure")),
                "valueQuantity": ucum(systolic, "mm[Hg]", "mmHg"),
            },
            {
                "code": concept(coding(LOINC, "8462-4", "Diastolic blood pressure")),
                "valueQuantity": ucum(diastolic, "mm[Hg]", "mmHg"),
            },
        ]

    ds.add(
        "bp-1",
        obs(
            "erika",
            "final",
            bp,
            "vital-signs",
            effectiveDateTime="2025-10-15T09:05:00+02:00",
            component=bp_components(142, 91),
        ),
    )
    ds.add(
        "bp-2",
        obs(
            "hans",
            "final",
            bp,
            "vital-signs",
            effectiveDateTime="2025-11-20T14:10:00+01:00",
            component=bp_components(118, 76),
        ),
    )

    befund = "urn:ivz:befund"
    ds.add(
        "mri-1",
        obs(
            "erika",
            "final",
            concept(coding(befund, "MRT-LWS", "MRT Lendenwirbelsäule")),
            "imaging",
            performer=performers("prac-becker"),
            valueCodeableConcept=concept(
                coding(SNOMED, "202708005", "Prolapsed lumbar intervertebral disc"),
                text="Bandscheibenvorfall L4/L5",
            ),
        ),
    )
    ds.add(
        "note-1",
        obs(
            "erika",
            "final",
            concept(coding(befund, "RED-FLAGS", "Red-Flag-Screening")),
            "exam",
            performer=performers("prac-becker"),
            valueString="Keine Red Flags, keine Parese",
        ),
    )

    # --- CarePlans ---------------------------------------------------------------------
    def careplan(who: str, status: str, intent: str, period: dict, **extra: Any) -> dict:
        return {
            "resourceType": "CarePlan",
            "status": status,
            "intent": intent,
            "subject": ref(who),
            "period": period,
            **extra,
        }

    ds.add(
        "cp-1",
        careplan(
            "erika",
            "active",
            "plan",
            {"start": "2025-10-20", "end": "2026-01-31"},
            title="Konservative Therapie LWS",
            instantiatesUri=[NVL],
            addresses=[ref("cond-1")],
            activity=[{"reference": ref("sr-2")}],
        ),
    )
    ds.add(
        "cp-2",
        careplan(
            "erika",
            "active",
            "plan",
            {"start": "2026-02-01"},
            basedOn=[ref("cp-1")],
            addresses=[ref("cond-1"), ref("cond-2")],
        ),
    )
    ds.add(
        "cp-3",
        careplan(
            "hans",
            "completed",
            "plan",
            {"start": "2025-11-01", "end": "2025-12-15"},
            instantiatesUri=[NVL + "/v2"],
            addresses=[ref("cond-3")],
            activity=[{"reference": ref("sr-4")}],
        ),
    )
    ds.add(
        "cp-4",
        careplan(
            "sabine",
            "draft",
            "proposal",
            {"start": "2026-02-10", "end": "2026-05-10"},
            instantiatesUri=["https://ivz.example/leitlinien/op_indikation"],
            addresses=[ref("cond-8")],
            activity=[{"reference": ref("sr-7")}],
        ),
    )
    ds.add(
        "cp-5",
        careplan("ayse", "revoked", "plan", {"end": "2025-12-31"}, addresses=[ref("cond-7")]),
    )

    # --- RiskAssessments (the number parameter ``probability``) -------------------------
    def risk(who: str, probability: float) -> dict[str, Any]:
        return {
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": ref(who),
            "prediction": [
                {"outcome": concept(text="Chronifizierung"), "probabilityDecimal": probability}
            ],
        }

    ds.add("ra-1", risk("erika", 0.35))
    ds.add("ra-2", risk("hans", 0.8))
    ds.add("ra-3", risk("sabine", 0.125))
    return ds


# --- searching ----------------------------------------------------------------------------


def parse_query(query: str) -> list[tuple[str, str]]:
    """``a=1&b=x|y`` (written unencoded, as in the spec) into pairs; httpx encodes them."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def short(resource_id: str) -> str:
    """The data set name of a resource id (foreign ids stay as they are, and fail)."""
    return resource_id.removeprefix(PREFIX)


def entries(bundle: dict[str, Any], mode: str) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode and "resource" in e
    ]


def names(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [short(r["id"]) for r in entries(bundle, mode)]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    for item in bundle.get("link", []):
        if item.get("relation") == relation:
            url: str = item["url"]
            return url
    return None


def get_search(
    client: httpx.Client, path: str, pairs: list[tuple[str, str]], **headers: str
) -> httpx.Response:
    return client.get(path, params=pairs, headers=headers)


def search_ok(client: httpx.Client, path: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    r = get_search(client, path, pairs)
    assert r.status_code == 200, f"{r.status_code}: {r.text[:2000]}"
    body: dict[str, Any] = r.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset", body
    return body

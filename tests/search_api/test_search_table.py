"""Table-driven searches over the spine second-opinion data set (see ``data.py``).

Every row is one search; the suite adds ``_tag=urn:ivz:test|<run>`` (so only this data set
can match) and ``_count=100`` (one page), then asserts EXACTLY the matched ids (as a set, or
as a list when ``_sort`` is used), the included ids and ``Bundle.total``. Expectations are
derived by hand from http://hl7.org/fhir/R4/search.html; comments explain the subtle ones.

Date rule used throughout (search.html#date): a date value is the range its precision
implies (``1968`` = the whole year, ``2025-10-15`` = that day) and a Period is the range
start..end (open when an end is missing). ``eq``: the search range contains the target range;
``gt``/``lt``: the range above/below the search value overlaps the target; ``ge``/``le``: as
gt/lt, or eq; ``sa``/``eb``: the target lies entirely after/before the search range.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from tests.search_api.conftest import Loaded
from tests.search_api.data import entries, names, parse_query, search_ok


@dataclass(frozen=True)
class Case:
    id: str
    path: str  # resource type, or "" for a system-level search
    query: str  # unencoded, as written in the spec; {base} is the server's FHIR base
    match: str  # data set names, space separated; ordered when the query has _sort
    include: str = ""  # names of included resources (search.mode = include)
    xfail: str | None = None


PAT = "Patient"
ORG = "Organization"
PRAC = "Practitioner"
COND = "Condition"
SR = "ServiceRequest"
APPT = "Appointment"
OBS = "Observation"
CP = "CarePlan"
RA = "RiskAssessment"
ALL_PATIENTS = "erika hans anna bernd juergen ayse sabine klaus maria lan"

CASES = [
    # --- string: starts-with, case- and accent-insensitive (search.html#string) ----------
    Case("pat-family-umlaut", PAT, "family=Müller", "erika"),
    Case("pat-family-no-accent", PAT, "family=muller", "erika"),
    Case("pat-family-upper", PAT, "family=MÜLLER", "erika"),
    # "Mueller" is another spelling, not an accent variant: it only matches "Mueller"
    Case("pat-family-ue", PAT, "family=Mueller", "hans"),
    # accent-insensitive: "Mü" is "mu", a prefix of "Mueller" too
    Case("pat-family-prefix", PAT, "family=Mü", "erika hans"),
    Case("pat-family-prefix-m", PAT, "family=m", "erika hans"),
    # Unicode case folding maps ß to ss: "weiss" and "Weiß" are the same string
    Case("pat-family-weiss", PAT, "family=weiss", "anna bernd"),
    Case("pat-family-eszett", PAT, "family=Weiß", "anna bernd"),
    # :exact is case- and accent-sensitive whole-string equality
    Case("pat-family-exact", PAT, "family:exact=Weiß", "bernd"),
    Case("pat-family-exact-case", PAT, "family:exact=weiß", ""),
    Case("pat-family-exact-umlaut", PAT, "family:exact=Müller", "erika"),
    Case("pat-family-exact-prefix", PAT, "family:exact=Müll", ""),
    Case("pat-family-contains", PAT, "family:contains=lange", "klaus"),
    Case("pat-family-contains-ll", PAT, "family:contains=LL", "erika hans"),
    # ä is a with an accent, not "ae": "schaefer" does not match "Schäfer"
    Case("pat-family-ae", PAT, "family=schaefer", ""),
    Case("pat-family-schafer", PAT, "family=schafer", "juergen"),
    Case("pat-name-given", PAT, "name=sabine", "sabine"),
    Case("pat-name-maiden", PAT, "name=krämer", "sabine"),
    Case("pat-name-maiden-plain", PAT, "name=KRAMER", "sabine"),
    Case("pat-given-second", PAT, "given=Peter", "hans"),
    Case("pat-given-cedilla", PAT, "given=ayse", "ayse"),
    Case("pat-given-exact", PAT, "given:exact=Hans", "hans"),
    Case("pat-name-contains-umlaut", PAT, "name:contains=üll", "erika"),
    Case("pat-address-contains", PAT, "address:contains=straße", "erika"),
    Case("pat-name-second-given", PAT, "name=theres", "maria"),
    Case("pat-name-or", PAT, "family=Müller,Weiß", "erika anna bernd"),
    Case("pat-name-and", PAT, "name=müller&name=erika", "erika"),
    # AND of two name values that belong to two different patients
    Case("pat-name-and-none", PAT, "name=müller&name=hans", ""),
    Case("pat-family-given-and", PAT, "family=m&given=h", "hans"),
    Case("pat-city", PAT, "address-city=köln", "sabine klaus"),
    Case("pat-city-prefix", PAT, "address-city=Heidel", "erika juergen maria"),
    Case("pat-postalcode", PAT, "address-postalcode=6911", "erika maria"),
    Case("pat-address-line", PAT, "address=hauptstr", "erika"),
    Case("pat-address-city-any", PAT, "address=münchen", "anna bernd"),
    # --- token (search.html#token) --------------------------------------------------------
    Case("pat-gender-female", PAT, "gender=female", "erika anna ayse sabine maria"),
    Case("pat-gender-male", PAT, "gender=male", "hans bernd juergen klaus"),
    # :not also returns resources without any value (lan has no gender)
    Case("pat-gender-not", PAT, "gender:not=male", "erika anna ayse sabine maria lan"),
    Case("pat-gender-missing", PAT, "gender:missing=true", "lan"),
    Case(
        "pat-gender-or",
        PAT,
        "gender=male,female",
        "erika hans anna bernd juergen ayse sabine klaus maria",
    ),
    Case(
        "pat-kvnr-system-code", PAT, "identifier=http://fhir.de/sid/gkv/kvid-10|A123456780", "erika"
    ),
    Case("pat-kvnr-code", PAT, "identifier=B234567891", "hans"),
    # a list mixes shapes: system|code of two systems, a bare code, |code, an unknown value
    Case(
        "pat-identifier-list",
        PAT,
        "identifier=http://fhir.de/sid/gkv/kvid-10|A123456780,B234567891,|A123456780,"
        "http://fhir.de/sid/gkv/kvid-10|NOPE,urn:oid:1.2.3|B234567891,"
        "https://kis.ukh.example/sid/patient|MRN-0042",
        "erika hans maria",
    ),
    # system| matches any identifier in that system: all but maria (MR only)
    Case(
        "pat-kvnr-system",
        PAT,
        "identifier=http://fhir.de/sid/gkv/kvid-10|",
        "erika hans anna bernd juergen ayse sabine klaus lan",
    ),
    # |code matches only identifiers WITHOUT a system
    Case("pat-identifier-no-system", PAT, "identifier=|A123456780", ""),
    Case("pat-identifier-other-system", PAT, "identifier=urn:oid:1.2.3|A123456780", ""),
    Case(
        "pat-identifier-of-type-mr",
        PAT,
        "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|MRN-0042",
        "maria",
    ),
    Case(
        "pat-identifier-of-type-gkv",
        PAT,
        "identifier:of-type=http://fhir.de/CodeSystem/identifier-type-de-basis|GKV|D456789013",
        "bernd",
    ),
    # the type is right but the value belongs to another identifier type
    Case(
        "pat-identifier-of-type-wrong",
        PAT,
        "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|A123456780",
        "",
    ),
    Case("pat-identifier-text", PAT, "identifier:text=GKV", ""),
    Case("pat-active-true", PAT, "active=true", "erika hans anna ayse sabine klaus"),
    Case("pat-active-false", PAT, "active=false", "bernd"),
    Case("pat-active-not-true", PAT, "active:not=true", "bernd juergen maria lan"),
    Case("pat-active-missing", PAT, "active:missing=true", "juergen maria lan"),
    Case("pat-phone", PAT, "phone=+49 6221 123456", "erika"),
    Case("pat-email", PAT, "email=erika.mueller@example.de", "erika"),
    Case("pat-language", PAT, "language=urn:ietf:bcp:47|tr", "ayse"),
    # deceased = Patient.deceased.exists() and Patient.deceased != false (R4 expression)
    Case("pat-deceased-true", PAT, "deceased=true", "juergen"),
    Case(
        "pat-deceased-false",
        PAT,
        "deceased=false",
        "erika hans anna bernd ayse sabine klaus maria lan",
    ),
    Case("pat-death-date", PAT, "death-date=2025-12-24", "juergen"),
    Case("pat-id", PAT, "_id=sa-erika,sa-hans", "erika hans"),
    Case("pat-id-none", PAT, "_id=sa-nobody", ""),
    # _id is a token parameter (R4 SearchParameter Resource-id), so :not applies
    Case(
        "pat-id-not",
        PAT,
        "_id:not=sa-erika",
        "hans anna bernd juergen ayse sabine klaus maria lan",
    ),
    # :not over an OR list: neither male nor female
    Case("pat-gender-not-or", PAT, "gender:not=male,female", "lan"),
    # codes of administrative-gender are case-sensitive
    Case("pat-gender-case", PAT, "gender=FEMALE", ""),
    Case("pat-identifier-case", PAT, "identifier=a123456780", ""),
    Case("pat-id-and-family", PAT, "_id=sa-erika,sa-hans&family=mue", "hans"),
    # --- date precision (search.html#date) ------------------------------------------------
    # the year 1968 contains the day 1968-04-12
    Case("pat-birth-year", PAT, "birthdate=1968", "erika"),
    Case("pat-birth-day", PAT, "birthdate=1968-04-12", "erika"),
    Case("pat-birth-eq-prefix", PAT, "birthdate=eq1968-04", "erika"),
    # hans was born "1955": a day does not contain a whole year, so eq on a day fails
    Case("pat-birth-day-vs-year", PAT, "birthdate=1955-03-01", ""),
    Case("pat-birth-year-vs-year", PAT, "birthdate=1955", "hans"),
    Case("pat-birth-month", PAT, "birthdate=1972-11", "anna"),
    Case("pat-birth-day-vs-month", PAT, "birthdate=1972-11-05", ""),
    Case("pat-birth-leap-day", PAT, "birthdate=1980-02-29", "bernd"),
    # gt1980: the range after 1980 (from 1981) overlaps
    Case("pat-birth-gt", PAT, "birthdate=gt1980", "ayse maria lan"),
    Case("pat-birth-ge", PAT, "birthdate=ge1980", "bernd ayse maria lan"),
    # sabine ("1961") overlaps the range before 1961-06-01, so lt matches her
    Case("pat-birth-lt-partial", PAT, "birthdate=lt1961-06-01", "hans juergen sabine"),
    Case("pat-birth-lt-year", PAT, "birthdate=lt1955", "juergen"),
    Case("pat-birth-le-year", PAT, "birthdate=le1955", "hans juergen"),
    # ge1961-06-01 overlaps sabine's 1961 too; le1972-12-31 keeps anna's 1972-11
    Case(
        "pat-birth-between",
        PAT,
        "birthdate=ge1961-06-01&birthdate=le1972-12-31",
        "sabine erika anna",
    ),
    # sa: starts after the end of the search range; sabine's 1961 starts inside it
    Case("pat-birth-sa", PAT, "birthdate=sa1961-06-01", "erika anna bernd ayse maria lan"),
    Case("pat-birth-eb", PAT, "birthdate=eb1961", "hans juergen"),
    # ne: all with a birthDate not contained in 1968 (klaus, without one, does not match)
    Case("pat-birth-ne", PAT, "birthdate=ne1968", "hans anna bernd juergen ayse sabine maria lan"),
    Case("pat-birth-or", PAT, "birthdate=1968,1990", "erika ayse"),
    # a second does not contain erika's whole birth day ...
    Case("pat-birth-instant-eq", PAT, "birthdate=1968-04-12T10:00:00Z", ""),
    # ... but her day overlaps the ranges above and below that second
    Case(
        "pat-birth-instant-ge",
        PAT,
        "birthdate=ge1968-04-12T10:00:00Z",
        "erika anna bernd ayse maria lan",
    ),
    Case(
        "pat-birth-instant-le",
        PAT,
        "birthdate=le1968-04-12T10:00:00Z",
        "erika hans juergen sabine",
    ),
    Case("pat-birth-missing", PAT, "birthdate:missing=true", "klaus"),
    Case(
        "pat-birth-present",
        PAT,
        "birthdate:missing=false",
        "erika hans anna bernd juergen ayse sabine maria lan",
    ),
    # --- meta: _tag, _profile, _source, _security, _lastUpdated ---------------------------
    Case("pat-tag-cohort", PAT, "_tag=urn:ivz:cohort|pilot", "erika hans sabine"),
    Case(
        "pat-tag-cohort-or",
        PAT,
        "_tag=urn:ivz:cohort|pilot,urn:ivz:cohort|control",
        "erika hans sabine bernd",
    ),
    Case(
        "pat-tag-not",
        PAT,
        "_tag:not=urn:ivz:cohort|pilot",
        "anna bernd juergen ayse klaus maria lan",
    ),
    Case(
        "pat-profile",
        PAT,
        "_profile=https://ivz.example/fhir/StructureDefinition/ivz-patient",
        "erika hans",
    ),
    Case(
        "pat-profile-below",
        PAT,
        "_profile:below=https://ivz.example/fhir/StructureDefinition",
        "erika hans",
    ),
    Case("pat-tag-system-only", PAT, "_tag=urn:ivz:cohort|", "erika hans sabine bernd"),
    Case("pat-tag-no-system", PAT, "_tag=|pilot", ""),
    Case("pat-source", PAT, "_source=urn:ivz:adapter:orthos", "hans"),
    Case("pat-source-kis", PAT, "_source=https://kis.ukh.example/fhir", "erika anna"),
    Case(
        "pat-security",
        PAT,
        "_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
        "lan",
    ),
    Case("pat-last-updated-gt", PAT, "_lastUpdated=gt2020-01-01", ALL_PATIENTS),
    Case("pat-last-updated-lt", PAT, "_lastUpdated=lt2020-01-01", ""),
    Case(
        "pat-last-updated-and", PAT, "_lastUpdated=ge2020&gender=male", "hans bernd juergen klaus"
    ),
    # --- references from Patient ----------------------------------------------------------
    Case("pat-organization", PAT, "organization=Organization/sa-org-mvz", "hans bernd ayse"),
    Case("pat-organization-missing", PAT, "organization:missing=true", "klaus"),
    Case("pat-gp", PAT, "general-practitioner=sa-prac-schmidt", "erika"),
    Case("pat-gp-typed", PAT, "general-practitioner:Practitioner=sa-prac-oezdemir", "hans"),
    # chain: the managing organization's IK number
    Case(
        "pat-chain-org-ik",
        PAT,
        "organization.identifier=http://fhir.de/sid/arge-ik/iknr|260300014",
        "sabine",
    ),
    # 2 links: organization -> partof -> name
    Case(
        "pat-chain-org-partof",
        PAT,
        "organization.partof.name=universitätsklinikum",
        "hans bernd ayse",
    ),
    # --- _has (reverse chaining) ----------------------------------------------------------
    Case("pat-has-odi", PAT, "_has:Observation:patient:code=97909-6", "erika hans sabine"),
    Case("pat-has-condition", PAT, "_has:Condition:subject:code=M51.2", "erika anna"),
    Case("pat-has-value", PAT, "_has:Observation:subject:value-quantity=gt50", "hans"),
    Case(
        "pat-has-and",
        PAT,
        "_has:Condition:subject:code=M51.2&_has:Observation:patient:code=97909-6",
        "erika",
    ),
    Case(
        "pat-has-nested",
        PAT,
        "_has:ServiceRequest:subject:_has:Appointment:based-on:status=fulfilled",
        "hans",
    ),
    Case("pat-has-id", PAT, "_has:Condition:subject:_id=sa-cond-4", "anna"),
    Case("pat-has-noshow", PAT, "_has:Appointment:patient:status=noshow", "ayse"),
    Case(
        "pat-has-and-gender",
        PAT,
        "_has:Observation:patient:code=72514-3&gender=female",
        "erika ayse",
    ),
    Case("pat-has-or", PAT, "_has:Condition:subject:code=M43.16,M41.15", "sabine maria"),
    # --- sorting (search.html#sort) -------------------------------------------------------
    Case(
        "pat-sort-birthdate",
        PAT,
        "_sort=birthdate&birthdate:missing=false",
        "juergen hans sabine erika anna bernd lan ayse maria",
    ),
    Case(
        "pat-sort-birthdate-desc",
        PAT,
        "_sort=-birthdate&birthdate:missing=false",
        "maria ayse lan bernd anna erika sabine hans juergen",
    ),
    Case("pat-sort-family", PAT, "_sort=family&gender=male", "klaus hans juergen bernd"),
    Case(
        "pat-sort-two-keys",
        PAT,
        "_sort=gender,-birthdate&gender:missing=false&birthdate:missing=false",
        "maria ayse anna erika sabine bernd hans juergen",
    ),
    Case("pat-sort-id-desc", PAT, "_sort=-_id&_tag=urn:ivz:cohort|pilot", "sabine hans erika"),
    # --- includes from Patient -------------------------------------------------------------
    Case(
        "pat-revinclude-condition",
        PAT,
        "_id=sa-erika&_revinclude=Condition:subject",
        "erika",
        include="cond-1 cond-2",
    ),
    Case(
        "pat-revinclude-two",
        PAT,
        "_id=sa-hans&_revinclude=Observation:patient&_revinclude=Appointment:patient",
        "hans",
        include="pain-3 odi-2 bp-2 appt-2 appt-3",
    ),
    Case(
        "pat-include-org-gp",
        PAT,
        "family=weiss&_include=Patient:organization&_include=Patient:general-practitioner",
        "anna bernd",
        include="org-ukh org-mvz",
    ),
    # --- Organization -----------------------------------------------------------------------
    Case("org-name", ORG, "name=universitatsklinikum", "org-ukh"),
    Case("org-name-prefix", ORG, "name=mvz", "org-mvz org-mvz2"),
    # \, is a literal comma inside the value, not an OR
    Case("org-name-escaped-comma", ORG, r"name=MVZ Rückenzentrum Nord\, Standort", "org-mvz"),
    Case("org-name-or", ORG, "name=MVZ Rückenzentrum Nordh,AOK", "org-mvz2 org-kk"),
    Case(
        "org-name-exact-comma",
        ORG,
        r"name:exact=MVZ Rückenzentrum Nord\, Standort Hamburg",
        "org-mvz",
    ),
    Case("org-name-contains", ORG, "name:contains=zentrum", "org-mvz org-mvz2"),
    Case("org-ik", ORG, "identifier=http://fhir.de/sid/arge-ik/iknr|260820028", "org-ukh"),
    Case(
        "org-ik-system",
        ORG,
        "identifier=http://fhir.de/sid/arge-ik/iknr|",
        "org-ukh org-mvz org-mvz2 org-kk",
    ),
    Case("org-type", ORG, "type=ins", "org-kk"),
    Case(
        "org-type-system",
        ORG,
        "type=http://terminology.hl7.org/CodeSystem/organization-type|prov",
        "org-ukh org-mvz org-mvz2",
    ),
    Case("org-partof", ORG, "partof=sa-org-ukh", "org-mvz"),
    Case("org-partof-missing", ORG, "partof:missing=true", "org-ukh org-kk"),
    Case("org-active", ORG, "active=false", "org-mvz2"),
    Case("org-city", ORG, "address-city=HAMBURG", "org-mvz"),
    Case("org-sort-name", ORG, "_sort=name", "org-kk org-mvz org-mvz2 org-ukh"),
    Case("org-has-patient", ORG, "_has:Patient:organization:gender=male", "org-ukh org-mvz"),
    Case(
        "org-revinclude",
        ORG,
        "_id=sa-org-ukh&_revinclude=Organization:partof&_revinclude=Patient:organization",
        "org-ukh",
        include="org-mvz erika anna juergen maria lan",
    ),
    Case(
        "org-include-iterate",
        ORG,
        "_id=sa-org-mvz2&_include:iterate=Organization:partof",
        "org-mvz2",
        include="org-mvz org-ukh",
    ),
    # --- Practitioner -----------------------------------------------------------------------
    Case("prac-family-umlaut", PRAC, "family=ozdemir", "prac-oezdemir"),
    Case(
        "prac-lanr",
        PRAC,
        "identifier=https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR|234567801",
        "prac-oezdemir",
    ),
    Case("prac-gender", PRAC, "gender=female", "prac-schmidt"),
    Case("prac-active", PRAC, "active=true", "prac-schmidt prac-oezdemir"),
    Case(
        "prac-has-odi",
        PRAC,
        "_has:Observation:performer:code=97909-6",
        "prac-schmidt prac-oezdemir",
    ),
    Case(
        "prac-has-requester", PRAC, "_has:ServiceRequest:requester:status=revoked", "prac-oezdemir"
    ),
    # --- Condition ----------------------------------------------------------------------------
    Case("cond-code", COND, "code=M51.2", "cond-1 cond-4"),
    Case(
        "cond-code-system",
        COND,
        "code=http://fhir.de/CodeSystem/bfarm/icd-10-gm|M54.5",
        "cond-2 cond-7",
    ),
    Case("cond-code-snomed", COND, "code=http://snomed.info/sct|279039007", "cond-7"),
    Case("cond-code-wrong-system", COND, "code=http://snomed.info/sct|M54.5", ""),
    Case("cond-code-or", COND, "code=M54.5,M54.4", "cond-2 cond-6 cond-7"),
    Case(
        "cond-code-system-only",
        COND,
        "code=http://fhir.de/CodeSystem/bfarm/icd-10-gm|",
        "cond-1 cond-2 cond-3 cond-4 cond-5 cond-6 cond-7 cond-8 cond-10",
    ),
    # :text searches CodeableConcept.text and Coding.display
    Case("cond-code-text-only", COND, "code:text=unklare", "cond-9"),
    Case("cond-code-text-display", COND, "code:text=kreuz", "cond-2 cond-7"),
    Case("cond-code-text-text", COND, "code:text=chronischer", "cond-7"),
    Case("cond-code-text-snomed", COND, "code:text=low back", "cond-7"),
    Case(
        "cond-code-not",
        COND,
        "code:not=M54.5",
        "cond-1 cond-3 cond-4 cond-5 cond-6 cond-8 cond-9 cond-10",
    ),
    Case(
        "cond-clinical-active",
        COND,
        "clinical-status=active",
        "cond-1 cond-2 cond-3 cond-5 cond-7 cond-8 cond-9 cond-10",
    ),
    Case("cond-clinical-or", COND, "clinical-status=resolved,inactive", "cond-4 cond-6"),
    Case("cond-clinical-not", COND, "clinical-status:not=active", "cond-4 cond-6"),
    Case("cond-verification", COND, "verification-status=provisional", "cond-5"),
    Case("cond-category", COND, "category=problem-list-item", "cond-2 cond-6 cond-7"),
    Case("cond-subject-typed-id", COND, "subject=Patient/sa-erika", "cond-1 cond-2"),
    Case("cond-subject-id", COND, "subject=sa-erika", "cond-1 cond-2"),
    Case("cond-patient", COND, "patient=sa-hans", "cond-3"),
    Case("cond-subject-modifier", COND, "subject:Patient=sa-hans", "cond-3"),
    # an absolute URL on this server's base means the same as the relative reference
    Case("cond-subject-absolute", COND, "subject={base}/Patient/sa-anna", "cond-4"),
    Case(
        "cond-subject-or",
        COND,
        "subject=Patient/sa-erika,Patient/sa-anna",
        "cond-1 cond-2 cond-4",
    ),
    Case("cond-subject-wrong-type", COND, "subject=Group/sa-erika", ""),
    Case("cond-asserter", COND, "asserter=Practitioner/sa-prac-oezdemir", "cond-3 cond-8"),
    Case("cond-asserter-typed", COND, "asserter:Practitioner=sa-prac-schmidt", "cond-1 cond-5"),
    Case(
        "cond-asserter-missing",
        COND,
        "asserter:missing=true",
        "cond-2 cond-4 cond-6 cond-7 cond-9 cond-10",
    ),
    Case("cond-body-site", COND, "body-site=http://snomed.info/sct|122496007", "cond-1 cond-3"),
    Case(
        "cond-security",
        COND,
        "_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
        "cond-9",
    ),
    # onsetDateTime "2025-09" lies within the month; cond-3's open-ended Period does not
    Case("cond-onset-month", COND, "onset-date=2025-09", "cond-1"),
    # cond-2's onset "2024" ends before 2025; cond-3's Period [2025-06-01, open) overlaps
    Case("cond-onset-ge", COND, "onset-date=ge2025-01-01", "cond-1 cond-3"),
    Case("cond-onset-lt", COND, "onset-date=lt2025-01-01", "cond-2 cond-4"),
    # a Period without an end is ongoing: it overlaps everything after its start
    Case("cond-onset-open-period", COND, "onset-date=gt2030-01-01", "cond-3"),
    Case("cond-abatement", COND, "abatement-date=le2025-06-30", "cond-4"),
    Case("cond-recorded-day", COND, "recorded-date=2025-10-15", "cond-1 cond-2"),
    Case("cond-recorded-month", COND, "recorded-date=2025-10", "cond-1 cond-2"),
    # recordedDate "2025-08" (a month) is not contained in one day of it
    Case("cond-recorded-month-target", COND, "recorded-date=2025-08", "cond-10"),
    Case("cond-recorded-day-vs-month", COND, "recorded-date=2025-08-15", ""),
    Case("cond-recorded-ge", COND, "recorded-date=ge2026-01-01", "cond-5 cond-8 cond-9"),
    Case(
        "cond-recorded-window",
        COND,
        "recorded-date=gt2025-12-01&recorded-date=lt2026-01-09",
        "cond-5 cond-7",
    ),
    # 2026-01-08T10:15:00+01:00 is 09:15:00Z: the same instant in another zone matches
    Case("cond-recorded-instant", COND, "recorded-date=2026-01-08T10:15:00+01:00", "cond-5"),
    Case("cond-recorded-instant-utc", COND, "recorded-date=2026-01-08T09:15:00Z", "cond-5"),
    Case("cond-code-and-status", COND, "code=M51.2&clinical-status=active", "cond-1"),
    Case("cond-chain-gender", COND, "subject:Patient.gender=female&code=M54.5", "cond-2 cond-7"),
    Case("cond-chain-kvnr", COND, "patient.identifier=D456789013", "cond-5"),
    # the chain ends in a modifier: Conditions of patients without a birthDate
    Case("cond-chain-missing", COND, "subject:Patient.birthdate:missing=true", "cond-9"),
    Case(
        "cond-two-chains",
        COND,
        "subject:Patient.family=m&subject:Patient.given=erika",
        "cond-1 cond-2",
    ),
    Case("cond-chain-id", COND, "subject:Patient._id=sa-anna", "cond-4"),
    Case(
        "cond-chain-tag",
        COND,
        "subject:Patient._tag=urn:ivz:cohort|pilot",
        "cond-1 cond-2 cond-3 cond-8",
    ),
    # nested: conditions addressed by a care plan that an active care plan is based on
    Case(
        "cond-has-nested",
        COND,
        "_has:CarePlan:condition:_has:CarePlan:based-on:status=active",
        "cond-1",
    ),
    Case("cond-has-careplan", COND, "_has:CarePlan:condition:status=active", "cond-1 cond-2"),
    Case(
        "cond-sort-recorded-desc",
        COND,
        "_sort=-recorded-date,-_id&clinical-status=active",
        "cond-9 cond-8 cond-5 cond-7 cond-3 cond-2 cond-1 cond-10",
    ),
    Case(
        "cond-sort-recorded-id",
        COND,
        "_sort=recorded-date,_id&subject=sa-erika",
        "cond-1 cond-2",
    ),
    Case(
        "cond-include-subject",
        COND,
        "code=M51.2&_include=Condition:subject",
        "cond-1 cond-4",
        include="erika anna",
    ),
    Case(
        "cond-include-subject-typed",
        COND,
        "code=M51.2&_include=Condition:subject:Patient",
        "cond-1 cond-4",
        include="erika anna",
    ),
    Case(
        "cond-include-asserter",
        COND,
        "code=M51.2&_include=Condition:asserter",
        "cond-1 cond-4",
        include="prac-schmidt",
    ),
    # --- ServiceRequest -----------------------------------------------------------------------
    Case("sr-intent", SR, "intent=proposal", "sr-1 sr-3 sr-5 sr-7 sr-10"),
    Case("sr-intent-status", SR, "intent=order&status=active", "sr-4"),
    Case("sr-status-or", SR, "status=active,on-hold", "sr-1 sr-3 sr-4 sr-5 sr-7"),
    Case(
        "sr-status-not",
        SR,
        "status:not=entered-in-error",
        "sr-1 sr-2 sr-3 sr-4 sr-5 sr-6 sr-7 sr-8 sr-9",
    ),
    Case(
        "sr-status-not-and",
        SR,
        "status:not=active&status:not=completed",
        "sr-5 sr-6 sr-8 sr-10",
    ),
    Case("sr-ops", SR, "code=http://fhir.de/CodeSystem/bfarm/ops|5-836.30", "sr-5 sr-7"),
    Case("sr-ops-code", SR, "code=5-839.60", "sr-3 sr-10"),
    Case("sr-local-code", SR, "code=urn:ivz:leistung|ZM", "sr-2 sr-4 sr-6"),
    Case("sr-code-text", SR, "code:text=bandscheiben", "sr-1"),
    Case("sr-code-text-display", SR, "code:text=zweitmeinung", "sr-2 sr-4 sr-6"),
    Case("sr-authored-month", SR, "authored=2025-10", "sr-1 sr-2"),
    # 2025-10-20T09:15:00+02:00 is 07:15Z, inside that day
    Case("sr-authored-day", SR, "authored=2025-10-20", "sr-1"),
    Case("sr-authored-lt", SR, "authored=lt2025-11-01", "sr-1 sr-2"),
    Case("sr-authored-ge", SR, "authored=ge2026-01-01", "sr-5 sr-6 sr-7 sr-8"),
    # sr-5 (2026-01-10T07:00Z) lies inside the search day, not after it
    Case("sr-authored-gt-day", SR, "authored=gt2026-01-10", "sr-6 sr-7 sr-8"),
    Case("sr-authored-eb", SR, "authored=eb2025-12-01", "sr-1 sr-2 sr-3 sr-4"),
    Case(
        "sr-authored-ne",
        SR,
        "authored=ne2025-12-01",
        "sr-1 sr-2 sr-3 sr-4 sr-5 sr-6 sr-7 sr-8 sr-10",
    ),
    Case(
        "sr-authored-instant-gt",
        SR,
        "authored=gt2025-11-05T13:00:00Z",
        "sr-4 sr-5 sr-6 sr-7 sr-8 sr-9 sr-10",
    ),
    Case("sr-based-on", SR, "based-on=ServiceRequest/sa-sr-1", "sr-2"),
    Case("sr-based-on-missing", SR, "based-on:missing=true", "sr-1 sr-3 sr-5 sr-7 sr-9 sr-10"),
    Case("sr-requester", SR, "requester=sa-prac-becker", "sr-3 sr-4 sr-9 sr-10"),
    Case("sr-performer-org", SR, "performer=Organization/sa-org-mvz", "sr-3 sr-9"),
    Case("sr-performer-typed", SR, "performer:Practitioner=sa-prac-oezdemir", "sr-2 sr-4"),
    # \| is a literal bar inside the identifier value
    Case("sr-identifier-escaped-bar", SR, r"identifier=urn:ivz:auftrag|SR\|2025\|0009", "sr-9"),
    Case("sr-identifier", SR, "identifier=urn:ivz:auftrag|SR-2025-0001", "sr-1"),
    # Reference.identifier (a logical reference without Reference.reference)
    Case(
        "sr-performer-identifier",
        SR,
        "performer:identifier=http://fhir.de/sid/arge-ik/iknr|260200013",
        "sr-7",
    ),
    Case("sr-performer-missing", SR, "performer:missing=true", "sr-5 sr-8 sr-10"),
    Case("sr-priority", SR, "priority=urgent", "sr-3 sr-4"),
    Case("sr-chain-name", SR, "subject:Patient.name=müller", "sr-1 sr-2"),
    Case("sr-chain-birthdate", SR, "subject:Patient.birthdate=lt1960", "sr-3 sr-4 sr-10"),
    Case(
        "sr-chain-kvnr",
        SR,
        "subject:Patient.identifier=http://fhir.de/sid/gkv/kvid-10|D456789013",
        "sr-5 sr-6",
    ),
    Case("sr-chain-requester", SR, "requester:Practitioner.family=becker", "sr-3 sr-4 sr-9 sr-10"),
    Case("sr-chain-based-on", SR, "based-on:ServiceRequest.code=5-831.0", "sr-2"),
    # 2 links: subject -> managing organization -> name
    Case(
        "sr-chain-2-org-name",
        SR,
        "subject:Patient.organization.name=mvz",
        "sr-3 sr-4 sr-5 sr-6 sr-7 sr-8 sr-9",
    ),
    Case(
        "sr-chain-2-org-ik",
        SR,
        "subject:Patient.organization.identifier=http://fhir.de/sid/arge-ik/iknr|260820028",
        "sr-1 sr-2 sr-10",
    ),
    Case("sr-has-appt-fulfilled", SR, "_has:Appointment:based-on:status=fulfilled", "sr-4"),
    Case("sr-has-appt-booked", SR, "_has:Appointment:based-on:status=booked", "sr-2 sr-7"),
    Case(
        "sr-sort-authored",
        SR,
        "_sort=authored&intent=order",
        "sr-2 sr-4 sr-9 sr-6 sr-8",
    ),
    Case(
        "sr-sort-status-authored",
        SR,
        "_sort=status,-authored&intent=proposal",
        "sr-7 sr-3 sr-1 sr-10 sr-5",
    ),
    Case(
        "sr-include-based-on",
        SR,
        "_id=sa-sr-2&_include=ServiceRequest:based-on",
        "sr-2",
        include="sr-1",
    ),
    # ServiceRequest:* follows every reference parameter: subject/patient, based-on,
    # requester, performer and the program's reason-reference (profiles/source/
    # searchparameters.yaml; core R4 has none for reasonReference)
    Case(
        "sr-include-all",
        SR,
        "_id=sa-sr-2&_include=ServiceRequest:*",
        "sr-2",
        include="erika sr-1 prac-schmidt prac-oezdemir cond-1",
    ),
    # sr-2 is a match already: it appears once, as a match, never again as an include
    Case(
        "sr-revinclude-dedupe",
        SR,
        "_id=sa-sr-1,sa-sr-2&_revinclude=ServiceRequest:based-on",
        "sr-1 sr-2",
    ),
    Case(
        "sr-revinclude-iterate",
        SR,
        "_id=sa-sr-3&_revinclude:iterate=ServiceRequest:based-on"
        "&_revinclude:iterate=Appointment:based-on",
        "sr-3",
        include="sr-4 appt-2 appt-3",
    ),
    # --- Appointment ----------------------------------------------------------------------------
    Case("appt-status", APPT, "status=booked", "appt-1 appt-6"),
    Case("appt-status-not", APPT, "status:not=cancelled", "appt-1 appt-2 appt-4 appt-5 appt-6"),
    Case("appt-date-month", APPT, "date=2025-11", "appt-1 appt-2 appt-3"),
    Case("appt-date-ge", APPT, "date=ge2026-01-01", "appt-4 appt-5 appt-6"),
    # appt-3 starts exactly at the searched second: that second is not "greater than" itself
    Case("appt-date-gt-second", APPT, "date=gt2025-11-18T08:00:00Z", "appt-2 appt-4 appt-5 appt-6"),
    Case(
        "appt-date-ge-le-same",
        APPT,
        "date=ge2025-11-20T14:00:00+01:00&date=le2025-11-20T14:00:00+01:00",
        "appt-2",
    ),
    Case("appt-date-offset", APPT, "date=2025-11-18T09:00:00+01:00", "appt-3"),
    Case("appt-date-lt-instant", APPT, "date=lt2025-11-03T10:30:00+01:00", "appt-1"),
    Case("appt-date-sa", APPT, "date=sa2026-01-05", "appt-4 appt-6"),
    Case("appt-patient", APPT, "patient=sa-hans", "appt-2 appt-3"),
    Case(
        "appt-actor",
        APPT,
        "actor=Practitioner/sa-prac-oezdemir",
        "appt-1 appt-2 appt-3 appt-6",
    ),
    Case("appt-practitioner", APPT, "practitioner=sa-prac-schmidt", "appt-4"),
    Case("appt-part-status", APPT, "part-status=declined", "appt-3"),
    Case("appt-part-status-tentative", APPT, "part-status=tentative", "appt-6"),
    Case("appt-based-on", APPT, "based-on=ServiceRequest/sa-sr-4", "appt-2 appt-3"),
    Case("appt-based-on-missing", APPT, "based-on:missing=true", "appt-5"),
    Case("appt-type", APPT, "appointment-type=ROUTINE", "appt-1 appt-2 appt-6"),
    Case(
        "appt-chain-intent",
        APPT,
        "based-on:ServiceRequest.intent=order",
        "appt-1 appt-2 appt-3 appt-4",
    ),
    # 2 links: basedOn -> subject -> family
    Case(
        "appt-chain-2-family",
        APPT,
        "based-on:ServiceRequest.subject:Patient.family=weiß",
        "appt-4",
    ),
    Case(
        "appt-sort-date",
        APPT,
        "_sort=date",
        "appt-1 appt-3 appt-2 appt-5 appt-4 appt-6",
    ),
    Case(
        "appt-include-iterate",
        APPT,
        "_id=sa-appt-1&_include=Appointment:based-on&_include:iterate=ServiceRequest:based-on",
        "appt-1",
        include="sr-2 sr-1",
    ),
    # without :iterate, ServiceRequest:based-on applies only to matches (Appointments)
    Case(
        "appt-include-no-iterate",
        APPT,
        "_id=sa-appt-1&_include=Appointment:based-on&_include=ServiceRequest:based-on",
        "appt-1",
        include="sr-2",
    ),
    # --- Observation ----------------------------------------------------------------------------
    Case(
        "obs-code-pain",
        OBS,
        "code=http://loinc.org|72514-3",
        "pain-1 pain-2 pain-3 pain-4 pain-5 pain-6",
    ),
    Case("obs-code-odi", OBS, "code=97909-6", "odi-1 odi-2 odi-3"),
    Case(
        "obs-code-or-patient", OBS, "code=72514-3,97909-6&patient=sa-erika", "pain-1 pain-2 odi-1"
    ),
    Case(
        "obs-category",
        OBS,
        "category=survey",
        "pain-1 pain-2 pain-3 pain-4 pain-5 pain-6 odi-1 odi-2 odi-3",
    ),
    Case("obs-category-vitals", OBS, "category=vital-signs", "bp-1 bp-2"),
    # value-quantity covers Observation.value as Quantity only: valueInteger is not searched
    Case("obs-vq-eq", OBS, "value-quantity=5", "pain-2"),
    Case("obs-vq-gt", OBS, "value-quantity=gt7", "pain-3 odi-1 odi-2 odi-3"),
    Case("obs-vq-lt-pain", OBS, "value-quantity=lt10&code=72514-3", "pain-2 pain-3 pain-4"),
    Case("obs-vq-ne", OBS, "value-quantity=ne5&code=72514-3", "pain-3 pain-4"),
    Case("obs-vq-ucum", OBS, "value-quantity=42|http://unitsofmeasure.org|%", "odi-1"),
    Case("obs-vq-ucum-score", OBS, "value-quantity=5|http://unitsofmeasure.org|{score}", "pain-2"),
    Case("obs-vq-wrong-unit", OBS, "value-quantity=42|http://unitsofmeasure.org|mg", ""),
    Case("obs-vq-code-only", OBS, "value-quantity=ge28.5||%", "odi-1 odi-2 odi-3"),
    # sa/eb: the whole implicit range [41.5, 42.5) lies below/above the value
    Case("obs-vq-sa", OBS, "value-quantity=sa42||%", "odi-2"),
    Case("obs-vq-eb", OBS, "value-quantity=eb42||%", "odi-3"),
    Case("obs-vq-decimal", OBS, "value-quantity=28.5", "odi-3"),
    # 28.6 means [28.55, 28.65): 28.5 is outside
    Case("obs-vq-decimal-precision", OBS, "value-quantity=28.6", ""),
    # ap: within 10% of 55 -> [49.5, 60.5]
    Case("obs-vq-ap", OBS, "value-quantity=ap55||%", "odi-2"),
    # the valueInteger pain scores and the data-absent one have no Quantity value
    Case(
        "obs-vq-missing",
        OBS,
        "value-quantity:missing=true&code=72514-3",
        "pain-1 pain-5 pain-6",
    ),
    # 2025-10-15T09:00:00+02:00 is 07:00:00Z
    Case("obs-date-instant-utc", OBS, "date=2025-10-15T07:00:00Z", "pain-1"),
    Case("obs-date-instant-offset", OBS, "date=2025-10-15T09:00:00+02:00", "pain-1"),
    Case("obs-date-day", OBS, "date=2025-10-15", "pain-1 odi-1 bp-1"),
    # both effectivePeriods of November lie within the month
    Case("obs-date-month", OBS, "date=2025-11", "pain-3 odi-2 bp-2"),
    # a 3-day Period is not contained in one day of it
    Case("obs-date-day-in-period", OBS, "date=2025-11-03", ""),
    Case(
        "obs-date-ge",
        OBS,
        "date=ge2025-11-05",
        "pain-3 bp-2 pain-2 pain-4 pain-5 pain-6 odi-3",
    ),
    Case("obs-date-gt-period", OBS, "date=gt2026-01-31", "odi-3"),
    # only the Period 2026-01-20..2026-02-10 lies on both sides of 2026-01-25
    Case("obs-date-both-sides", OBS, "date=lt2026-01-25&date=gt2026-01-25", "odi-3"),
    Case(
        "obs-date-sa",
        OBS,
        "date=sa2025-11-01",
        "bp-2 pain-2 pain-4 pain-5 pain-6 odi-3",
    ),
    Case("obs-date-eb", OBS, "date=eb2025-11-07", "odi-2 pain-1 odi-1 bp-1"),
    # pain-3's Period starts ON 2025-11-01: neither before it nor inside that day only
    Case("obs-date-le", OBS, "date=le2025-11-01", "pain-1 odi-1 bp-1"),
    Case(
        "obs-status",
        OBS,
        "status=final",
        "pain-1 pain-2 pain-3 pain-5 odi-1 odi-2 bp-1 bp-2 mri-1 note-1",
    ),
    Case("obs-status-not", OBS, "status:not=final", "pain-4 pain-6 odi-3"),
    Case(
        "obs-performer",
        OBS,
        "performer=Practitioner/sa-prac-oezdemir",
        "pain-3 odi-2 odi-3",
    ),
    Case("obs-performer-patient", OBS, "performer:Patient=sa-erika", "pain-2"),
    Case("obs-performer-missing", OBS, "performer:missing=true", "pain-6 bp-1 bp-2"),
    Case(
        "obs-chain-gender",
        OBS,
        "subject:Patient.gender=male&code=72514-3",
        "pain-3 pain-4 pain-6",
    ),
    Case("obs-based-on", OBS, "based-on=ServiceRequest/sa-sr-4", "pain-3 odi-2"),
    # 2 links: basedOn -> requester -> family
    Case(
        "obs-chain-2-requester",
        OBS,
        "based-on:ServiceRequest.requester:Practitioner.family=becker",
        "pain-3 odi-2",
    ),
    # 3 links: subject -> organization -> partof -> name
    Case(
        "obs-chain-3-org",
        OBS,
        "subject:Patient.organization.partof.name=universitätsklinikum",
        "pain-3 odi-2 bp-2 pain-4 pain-5",
    ),
    Case("obs-data-absent", OBS, "data-absent-reason=asked-unknown", "pain-6"),
    # composites: code and value of the SAME Observation (or the same component)
    Case(
        "obs-code-value-quantity",
        OBS,
        "code-value-quantity=http://loinc.org|97909-6$gt40",
        "odi-1 odi-2",
    ),
    Case("obs-code-value-quantity-pain", OBS, "code-value-quantity=72514-3$lt6", "pain-2 pain-4"),
    Case(
        "obs-code-value-quantity-or",
        OBS,
        "code-value-quantity=72514-3$ge8,97909-6$lt30",
        "pain-3 odi-3",
    ),
    Case(
        "obs-component-systolic",
        OBS,
        "component-code-value-quantity=http://loinc.org|8480-6$gt140",
        "bp-1",
    ),
    Case("obs-component-diastolic", OBS, "component-code-value-quantity=8462-4$lt80", "bp-2"),
    # no systolic value is below 100; diastolic values must not pair with the systolic code
    Case("obs-component-no-cross", OBS, "component-code-value-quantity=8480-6$lt100", ""),
    # a composite's quantity part follows the quantity rules: 42.0 means [41.95, 42.05),
    # which contains the value 42, exactly as value-quantity=42.0 does
    Case("obs-vq-precise", OBS, "value-quantity=42.0", "odi-1"),
    Case(
        "obs-cvq-precise",
        OBS,
        "code-value-quantity=97909-6$42.0",
        "odi-1",
    ),
    Case(
        "obs-component-precise",
        OBS,
        "component-code-value-quantity=8480-6$142.0",
        "bp-1",
    ),
    # 42 is not greater than 42.4
    Case("obs-vq-gt-decimal", OBS, "value-quantity=gt42.4", "odi-2"),
    Case(
        "obs-cvq-gt-decimal",
        OBS,
        "code-value-quantity=97909-6$gt42.4",
        "odi-2",
    ),
    Case("obs-component-code", OBS, "component-code=8480-6", "bp-1 bp-2"),
    Case("obs-component-value", OBS, "component-value-quantity=91", "bp-1"),
    Case(
        "obs-combo",
        OBS,
        "combo-code-value-quantity=8480-6$gt140,97909-6$ge56",
        "bp-1 odi-2",
    ),
    Case("obs-combo-value", OBS, "combo-value-quantity=gt100", "bp-1 bp-2"),
    Case(
        "obs-combo-code",
        OBS,
        "combo-code=8462-4,97909-6",
        "bp-1 bp-2 odi-1 odi-2 odi-3",
    ),
    # combo-code is read from the code and component-code rows: every Observation has one
    Case("obs-combo-code-missing", OBS, "combo-code:missing=true", ""),
    Case("obs-sort-date-desc", OBS, "_sort=-date&code=97909-6", "odi-3 odi-2 odi-1"),
    Case(
        "obs-sort-value",
        OBS,
        "_sort=value-quantity&value-quantity:missing=false&category=survey",
        "pain-4 pain-2 pain-3 odi-3 odi-1 odi-2",
    ),
    Case(
        "obs-include-performer-subject",
        OBS,
        "code=97909-6&_include=Observation:performer&_include=Observation:subject",
        "odi-1 odi-2 odi-3",
        include="prac-schmidt prac-oezdemir erika hans sabine",
    ),
    # pain-2's performer is a Patient: the Practitioner-typed include finds nothing
    Case(
        "obs-include-typed-none",
        OBS,
        "_id=sa-pain-2&_include=Observation:performer:Practitioner",
        "pain-2",
    ),
    Case(
        "obs-include-typed-patient",
        OBS,
        "_id=sa-pain-2&_include=Observation:performer:Patient",
        "pain-2",
        include="erika",
    ),
    Case("obs-value-concept", OBS, "value-concept=http://snomed.info/sct|202708005", "mri-1"),
    Case("obs-value-concept-text", OBS, "value-concept:text=bandscheibenvorfall", "mri-1"),
    Case("obs-combo-value-concept", OBS, "combo-value-concept=202708005", "mri-1"),
    Case(
        "obs-code-value-concept",
        OBS,
        "code-value-concept=urn:ivz:befund|MRT-LWS$http://snomed.info/sct|202708005",
        "mri-1",
    ),
    Case("obs-code-value-concept-wrong", OBS, "code-value-concept=MRT-LWS$123", ""),
    Case("obs-value-string", OBS, "value-string=keine", "note-1"),
    Case("obs-value-string-contains", OBS, "value-string:contains=parese", "note-1"),
    Case(
        "obs-value-string-exact-comma",
        OBS,
        r"value-string:exact=Keine Red Flags\, keine Parese",
        "note-1",
    ),
    # unescaped, the comma makes two values (OR) and neither is the whole string
    Case(
        "obs-value-string-exact-split",
        OBS,
        "value-string:exact=Keine Red Flags, keine Parese",
        "",
    ),
    Case("obs-code-value-string", OBS, "code-value-string=RED-FLAGS$keine red", "note-1"),
    # --- CarePlan -------------------------------------------------------------------------------
    Case("cp-status", CP, "status=active", "cp-1 cp-2"),
    Case("cp-intent", CP, "intent=proposal", "cp-4"),
    Case("cp-based-on", CP, "based-on=CarePlan/sa-cp-1", "cp-2"),
    Case("cp-based-on-present", CP, "based-on:missing=false", "cp-2"),
    # the period 2026-02-10..2026-05-10 lies within 2026; cp-2 (open end) does not
    Case("cp-date-year", CP, "date=2026", "cp-4"),
    # a Period overlapping the range after 2026-01-01 is "greater": cp-1 ends 2026-01-31
    Case("cp-date-gt", CP, "date=gt2026-01-01", "cp-1 cp-2 cp-4"),
    # cp-5 has no start: it is open towards the past
    Case("cp-date-lt-open-start", CP, "date=lt2025-01-01", "cp-5"),
    Case("cp-date-ge-open-end", CP, "date=ge2026-06-01", "cp-2"),
    # cp-5 ends 2025-12-31 (the whole day): before 2026-01-01
    Case("cp-date-eb", CP, "date=eb2026-01-01", "cp-3 cp-5"),
    Case("cp-date-sa", CP, "date=sa2025-12-31", "cp-2 cp-4"),
    # only Periods spanning 2025-12-01 overlap both sides of it
    Case("cp-date-both-sides", CP, "date=lt2025-12-01&date=gt2025-12-01", "cp-1 cp-3 cp-5"),
    Case("cp-condition", CP, "condition=Condition/sa-cond-1", "cp-1 cp-2"),
    Case("cp-activity-reference", CP, "activity-reference=ServiceRequest/sa-sr-4", "cp-3"),
    Case(
        "cp-instantiates-uri",
        CP,
        "instantiates-uri=https://ivz.example/leitlinien/nvl-kreuzschmerz",
        "cp-1",
    ),
    Case(
        "cp-instantiates-below",
        CP,
        "instantiates-uri:below=https://ivz.example/leitlinien/nvl-kreuzschmerz",
        "cp-1 cp-3",
    ),
    Case(
        "cp-instantiates-above",
        CP,
        "instantiates-uri:above=https://ivz.example/leitlinien/nvl-kreuzschmerz/v2/anhang",
        "cp-1 cp-3",
    ),
    Case(
        "cp-instantiates-above-parent",
        CP,
        "instantiates-uri:above=https://ivz.example/leitlinien/nvl-kreuzschmerz",
        "cp-1",
    ),
    # :above is a literal prefix test: "_" in a stored URI is no wildcard
    Case(
        "cp-instantiates-above-underscore",
        CP,
        "instantiates-uri:above=https://ivz.example/leitlinien/op_indikation/lws",
        "cp-4",
    ),
    Case(
        "cp-instantiates-above-no-wildcard",
        CP,
        "instantiates-uri:above=https://ivz.example/leitlinien/opXindikation/lws",
        "",
    ),
    Case("cp-chain-name", CP, "subject:Patient.name=müller&status=active", "cp-1 cp-2"),
    Case("cp-chain-condition-code", CP, "condition.code=M43.16", "cp-4"),
    Case("cp-sort-date", CP, "_sort=date&status=active,completed,draft", "cp-1 cp-3 cp-2 cp-4"),
    Case(
        "cp-include-iterate",
        CP,
        "_id=sa-cp-2&_include=CarePlan:based-on&_include:iterate=CarePlan:activity-reference",
        "cp-2",
        include="cp-1 sr-2",
    ),
    Case(
        "cp-include-condition",
        CP,
        "status=active&_include=CarePlan:condition",
        "cp-1 cp-2",
        include="cond-1 cond-2",
    ),
    # --- RiskAssessment: the number parameter probability (search.html#number) -------------
    Case("ra-eq", RA, "probability=0.8", "ra-2"),
    Case("ra-eq-precision", RA, "probability=0.125", "ra-3"),
    # 0.35 means [0.345, 0.355): 0.35 matches, 0.3 means [0.25, 0.35) and does not
    Case("ra-eq-decimal", RA, "probability=0.350", "ra-1"),
    Case("ra-eq-trailing-zero", RA, "probability=0.80", "ra-2"),
    Case("ra-eq-coarse", RA, "probability=0.3", ""),
    Case("ra-gt", RA, "probability=gt0.3", "ra-1 ra-2"),
    Case("ra-lt", RA, "probability=lt0.3", "ra-3"),
    Case("ra-ge", RA, "probability=ge0.35", "ra-1 ra-2"),
    Case("ra-le", RA, "probability=le0.35", "ra-1 ra-3"),
    Case("ra-ne", RA, "probability=ne0.35", "ra-2 ra-3"),
    Case("ra-ap", RA, "probability=ap0.8", "ra-2"),
    Case("ra-or", RA, "probability=0.8,0.125", "ra-2 ra-3"),
    Case("ra-chain", RA, "subject:Patient.family=könig", "ra-3"),
    Case("ra-sort", RA, "_sort=-probability", "ra-2 ra-1 ra-3"),
    # --- system level: _type ---------------------------------------------------------------
    # R4 search.html: GET [base]?params searches all resource types
    Case(
        "sys-all-types",
        "",
        "_id=sa-erika,sa-org-kk,sa-cond-1",
        "erika org-kk cond-1",
    ),
    Case("sys-type-name", "", "_type=Patient,Practitioner&family=özdemir", "ayse prac-oezdemir"),
    Case(
        "sys-type-patient-param",
        "",
        "_type=Condition,Observation&patient=sa-hans",
        "cond-3 pain-3 odi-2 bp-2",
    ),
    Case("sys-type-id", "", "_type=Patient,Organization&_id=sa-erika,sa-org-kk", "erika org-kk"),
    Case(
        "sys-type-security",
        "",
        "_type=Patient,Condition&_security=http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
        "lan cond-9",
    ),
]


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


def test_cases_are_distinct() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({(c.path, c.query) for c in CASES}) == len(CASES)
    assert len(CASES) >= 150


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_search(client: httpx.Client, dataset: Loaded, case: Case) -> None:
    pairs = parse_query(case.query.replace("{base}", dataset.base))
    pairs += [("_tag", dataset.tag), ("_count", "100")]
    bundle = search_ok(client, f"/{case.path}" if case.path else "", pairs)
    got = names(bundle)
    expected = case.match.split()
    if any(name == "_sort" for name, _ in pairs):
        assert got == expected
    else:
        assert len(got) == len(set(got)), f"a match appears twice: {got}"
        assert sorted(got) == sorted(expected)
    included = names(bundle, "include")
    assert len(included) == len(set(included)), f"an include appears twice: {included}"
    assert sorted(included) == sorted(case.include.split())
    assert bundle.get("total") == len(expected)
    assert entries(bundle, "outcome") == [], "every parameter here is known and valid"

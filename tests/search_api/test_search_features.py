"""Search behaviour beyond single queries: paging, result parameters, errors, contexts.

http://hl7.org/fhir/R4/search.html and http://hl7.org/fhir/R4/http.html#search. Searches on
the shared data set always carry the run tag; tests that write use their own tag.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.search_api.conftest import Loaded
from tests.search_api.data import (
    FHIR_JSON,
    TEST_SYSTEM,
    entries,
    get_search,
    link,
    names,
    parse_query,
    search_ok,
    short,
)

SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")
ALL_PATIENTS = {
    "erika",
    "hans",
    "anna",
    "bernd",
    "juergen",
    "ayse",
    "sabine",
    "klaus",
    "maria",
    "lan",
}


def tagged(dataset: Loaded, query: str) -> list[tuple[str, str]]:
    return [*parse_query(query), ("_tag", dataset.tag)]


def outcome_issues(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    issues: list[dict[str, Any]] = body["issue"]
    assert issues
    return issues


def follow(client: httpx.Client, url: str) -> dict[str, Any]:
    r = client.get(url)
    assert r.status_code == 200, r.text[:2000]
    body: dict[str, Any] = r.json()
    return body


def query_names(url: str) -> list[str]:
    return [name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)]


def has_subsetted_tag(resource: dict[str, Any]) -> bool:
    tags = resource.get("meta", {}).get("tag", [])
    return any((t.get("system"), t.get("code")) == SUBSETTED for t in tags)


def transaction(client: httpx.Client, resources: list[dict[str, Any]]) -> list[str]:
    """POST resources in one transaction; their new ids, in order."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources
        ],
    }
    r = client.post("", json=bundle, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200, r.text[:2000]
    return [e["response"]["location"].split("/")[1] for e in r.json()["entry"]]


def own_tag() -> tuple[str, str]:
    """A tag of one test's own: (token for _tag, meta.tag coding's code)."""
    code = f"own-{uuid.uuid4().hex[:12]}"
    return f"{TEST_SYSTEM}|{code}", code


# --- paging ------------------------------------------------------------------------------


PAGED = [
    # klaus has no birthDate: he is last, and 'previous' from his page must work
    pytest.param("Patient", "_sort=birthdate"),
    ("Patient", "_sort=birthdate&birthdate:missing=false"),
    ("Patient", "_sort=-_id"),
    ("Patient", "_sort=-_lastUpdated"),
    # lan has no gender
    pytest.param("Patient", "_sort=gender,-family"),
    # mri-1 and note-1 have no date: the 4th page ends with one of them
    pytest.param("Observation", "_sort=-date,_id"),
    ("Observation", "_sort=-date&date:missing=false"),
    ("Observation", "_sort=value-quantity&value-quantity:missing=false"),
    ("Condition", "_sort=recorded-date"),
    ("ServiceRequest", "_sort=status,-authored"),
    ("Appointment", "_sort=-date"),
    # several codings per Observation: each is met once, at its lowest / highest code
    ("Observation", "_sort=code"),
    ("Observation", "_sort=-code"),
]


def _paged_id(p: Any) -> str:
    rtype, sort = p.values if hasattr(p, "values") else p
    return f"{rtype}-{sort}"


@pytest.mark.parametrize(("rtype", "sort"), PAGED, ids=[_paged_id(p) for p in PAGED])
def test_paging_next_then_previous(
    client: httpx.Client, dataset: Loaded, rtype: str, sort: str
) -> None:
    """Walking ``next`` with _count=3 yields the full sorted result; ``previous`` walks back."""
    full = search_ok(client, f"/{rtype}", tagged(dataset, f"{sort}&_count=100"))
    expected = names(full)
    assert len(expected) == full["total"] > 3
    first = search_ok(client, f"/{rtype}", tagged(dataset, f"{sort}&_count=3"))
    assert link(first, "previous") is None
    pages = [first]
    while (url := link(pages[-1], "next")) is not None:
        assert len(pages) < 20, "the next links never end"
        pages.append(follow(client, url))
    walked = [names(p) for p in pages]
    assert all(len(p) == 3 for p in walked[:-1]) and 1 <= len(walked[-1]) <= 3
    assert [n for page in walked for n in page] == expected
    assert all(p.get("total", len(expected)) == len(expected) for p in pages)
    back = [pages[-1]]
    while (url := link(back[-1], "previous")) is not None:
        assert len(back) < 20, "the previous links never end"
        back.append(follow(client, url))
    assert [names(p) for p in reversed(back)] == walked


def test_paging_survives_inserts_between_pages(client: httpx.Client) -> None:
    """New matches written between page requests never make a page repeat or skip one."""
    token, code = own_tag()

    def patient(day: int, family: str) -> dict[str, Any]:
        return {
            "resourceType": "Patient",
            "meta": {"tag": [{"system": TEST_SYSTEM, "code": code}]},
            "name": [{"family": family}],
            "birthDate": f"2000-01-{day:02d}",
        }

    originals = transaction(client, [patient(d, f"Orig{d}") for d in range(1, 9)])
    pairs = [("_tag", token), ("_sort", "birthdate"), ("_count", "3")]
    page = search_ok(client, "/Patient", pairs)
    seen = [r["id"] for r in entries(page, "match")]
    inserted = []
    while (url := link(page, "next")) is not None:
        assert len(seen) < 40, "the next links never end"
        # one new match before the cursor, one after it, before every further page
        day = int(entries(page, "match")[-1]["birthDate"][-2:])
        inserted += transaction(
            client, [patient(max(day - 1, 1), "Before"), patient(min(day + 1, 28), "After")]
        )
        page = follow(client, url)
        seen += [r["id"] for r in entries(page, "match")]
    assert len(seen) == len(set(seen)), f"a page repeated a resource: {seen}"
    assert set(originals) <= set(seen), "a page skipped a resource that matched throughout"
    assert set(seen) <= set(originals) | set(inserted)
    # and back again, after one more insert: still no repeats
    transaction(client, [patient(4, "Late")])
    back = [r["id"] for r in entries(page, "match")]
    while (url := link(page, "previous")) is not None:
        page = follow(client, url)
        back += [r["id"] for r in entries(page, "match")]
    assert len(back) == len(set(back)), f"a previous page repeated a resource: {back}"
    assert set(originals) <= set(back)


def test_include_applies_to_the_page_only(client: httpx.Client, dataset: Loaded) -> None:
    """Included resources belong to the page's matches and do not count towards _count."""
    pairs = tagged(dataset, "code=M51.2,M54.5&_sort=_id&_count=2&_include=Condition:subject")
    page = search_ok(client, "/Condition", pairs)
    assert names(page) == ["cond-1", "cond-2"]
    assert sorted(names(page, "include")) == ["erika"]
    assert page["total"] == 4
    nxt = follow(client, link(page, "next") or "")
    assert names(nxt) == ["cond-4", "cond-7"]
    assert sorted(names(nxt, "include")) == ["anna", "ayse"]


def test_total_accurate_with_small_pages(client: httpx.Client, dataset: Loaded) -> None:
    bundle = search_ok(client, "/Patient", tagged(dataset, "_count=2&_total=accurate"))
    assert bundle["total"] == 10
    assert len(names(bundle)) == 2
    assert link(bundle, "next") is not None


# --- _summary and _elements --------------------------------------------------------------


def test_summary_count(client: httpx.Client, dataset: Loaded) -> None:
    bundle = search_ok(client, "/Patient", tagged(dataset, "gender=female&_summary=count"))
    assert bundle["total"] == 5
    assert entries(bundle, "match") == []
    everything = search_ok(client, "/Observation", tagged(dataset, "_summary=count"))
    assert everything["total"] == 13
    assert entries(everything, "match") == []


def test_summary_true_keeps_summary_elements(client: httpx.Client, dataset: Loaded) -> None:
    bundle = search_ok(client, "/Patient", tagged(dataset, "_id=sa-erika,sa-ayse&_summary=true"))
    resources = {short(r["id"]): r for r in entries(bundle, "match")}
    assert set(resources) == {"erika", "ayse"}
    assert resources["erika"]["name"][0]["family"] == "Müller"
    assert resources["erika"]["birthDate"] == "1968-04-12"
    assert "generalPractitioner" not in resources["erika"]  # not a summary element
    assert "communication" not in resources["ayse"]  # not a summary element
    assert all(has_subsetted_tag(r) for r in resources.values())


def test_elements(client: httpx.Client, dataset: Loaded) -> None:
    pairs = tagged(dataset, "family=weiss&_elements=birthDate,gender")
    bundle = search_ok(client, "/Patient", pairs)
    resources = entries(bundle, "match")
    assert sorted(short(r["id"]) for r in resources) == ["anna", "bernd"]
    for resource in resources:
        assert set(resource) <= {"resourceType", "id", "meta", "birthDate", "gender"}, resource
        assert {"birthDate", "gender"} <= set(resource)
        assert has_subsetted_tag(resource)
    assert bundle["total"] == 2


# --- unknown parameters, strict handling, malformed values -----------------------------


def test_unknown_parameter_is_ignored_and_reported(client: httpx.Client, dataset: Loaded) -> None:
    pairs = tagged(dataset, "family=müller&bogus-param=1")
    bundle = search_ok(client, "/Patient", pairs)
    assert names(bundle) == ["erika"]
    outcomes = entries(bundle, "outcome")
    assert len(outcomes) == 1 and outcomes[0]["resourceType"] == "OperationOutcome"
    assert "bogus-param" in str(outcomes[0]["issue"])
    assert all(i["severity"] in ("warning", "information") for i in outcomes[0]["issue"])
    self_link = link(bundle, "self") or ""
    assert "bogus-param" not in query_names(self_link)
    assert {"family", "_tag"} <= set(query_names(self_link))


def test_unknown_parameter_strict_is_400(client: httpx.Client, dataset: Loaded) -> None:
    pairs = tagged(dataset, "family=müller&bogus-param=1")
    r = get_search(client, "/Patient", pairs, Prefer="handling=strict")
    assert r.status_code == 400
    assert "bogus-param" in str(outcome_issues(r))
    ok = get_search(client, "/Patient", tagged(dataset, "family=müller"), Prefer="handling=strict")
    assert ok.status_code == 200
    assert names(ok.json()) == ["erika"]


@pytest.mark.parametrize(
    ("rtype", "unknown"),
    [("Condition", "subject:Patient.bogus-param"), ("Patient", "_has:Observation:patient:bogus")],
    ids=["chain", "has"],
)
def test_unknown_chained_parameter_is_ignored(
    client: httpx.Client, dataset: Loaded, rtype: str, unknown: str
) -> None:
    known = "code=M51.2" if rtype == "Condition" else "family=weiss"
    bundle = search_ok(client, f"/{rtype}", tagged(dataset, f"{known}&{unknown}=1"))
    assert len(names(bundle)) == 2
    assert unknown.split(".")[-1].split(":")[-1] in str(entries(bundle, "outcome"))
    assert unknown not in query_names(link(bundle, "self") or "")


def test_unknown_chained_parameter_strict_is_400(client: httpx.Client, dataset: Loaded) -> None:
    pairs = tagged(dataset, "code=M51.2&subject:Patient.bogus-param=1")
    r = get_search(client, "/Condition", pairs, Prefer="handling=strict")
    assert r.status_code == 400
    assert "bogus-param" in str(outcome_issues(r))


MALFORMED = [
    ("bad-date", "Patient", "birthdate=1968-13-45"),
    ("not-a-date", "Patient", "birthdate=gestern"),
    ("bad-prefix", "Patient", "birthdate=xx1968"),
    ("prefix-only", "Patient", "birthdate=ge"),
    ("bad-number", "RiskAssessment", "probability=abc"),
    ("bad-number-prefix", "RiskAssessment", "probability=zz0.5"),
    ("bad-quantity", "Observation", "value-quantity=viel|http://unitsofmeasure.org|%"),
    ("unknown-modifier-string", "Patient", "family:sounds-like=mueller"),
    ("modifier-wrong-type", "Patient", "birthdate:exact=1968"),
    ("token-modifier-on-token", "Patient", "gender:contains=male"),
    ("missing-not-boolean", "Patient", "gender:missing=maybe"),
    ("composite-one-part", "Observation", "code-value-quantity=97909-6"),
    ("bad-count", "Patient", "_count=viele"),
    ("bad-summary", "Patient", "_summary=kurz"),
    ("bad-total", "Patient", "_total=alle"),
    ("has-not-reference", "Patient", "_has:Observation:code:status=final"),
    ("has-unknown-type", "Patient", "_has:Bogus:patient:code=1"),
    ("chain-not-reference", "Condition", "code.name=x"),
]


@pytest.mark.parametrize(
    ("rtype", "query"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_search_is_400(
    client: httpx.Client, dataset: Loaded, rtype: str, query: str
) -> None:
    r = get_search(client, f"/{rtype}", tagged(dataset, query))
    assert r.status_code == 400, r.text[:500]
    assert any(i["severity"] in ("error", "fatal") for i in outcome_issues(r))


# --- POST _search, system level, compartments --------------------------------------------


def test_post_search_form(client: httpx.Client, dataset: Loaded) -> None:
    form = {"family": "müller", "_tag": dataset.tag}
    r = client.post("/Patient/_search", data=form)
    assert r.status_code == 200, r.text[:500]
    bundle = r.json()
    assert bundle["type"] == "searchset"
    assert names(bundle) == ["erika"] and bundle["total"] == 1
    # parameters in the URL and in the body are combined (ANDed)
    r = client.post("/Patient/_search?gender=male", data={"family": "m", "_tag": dataset.tag})
    assert r.status_code == 200
    assert names(r.json()) == ["hans"]
    # escapes survive form encoding
    form = {"name": r"MVZ Rückenzentrum Nord\, Standort", "_tag": dataset.tag}
    r = client.post("/Organization/_search", data=form)
    assert names(r.json()) == ["org-mvz"]


def test_system_search_with_type(client: httpx.Client, dataset: Loaded) -> None:
    pairs = tagged(dataset, "_type=Patient,Practitioner&family=özdemir")
    bundle = search_ok(client, "", pairs)
    found = {(r["resourceType"], r["id"]) for r in entries(bundle, "match")}
    assert found == {("Patient", "sa-ayse"), ("Practitioner", "sa-prac-oezdemir")}
    for entry in bundle["entry"]:
        res = entry["resource"]
        assert entry["fullUrl"] == f"{dataset.base}/{res['resourceType']}/{res['id']}"
    assert bundle["total"] == 2


COMPARTMENT = [
    ("sa-hans", "Observation", "", "pain-3 odi-2 bp-2"),
    ("sa-hans", "Observation", "code=97909-6", "odi-2"),
    # Observation is in the compartment through subject OR performer
    ("sa-erika", "Observation", "", "pain-1 pain-2 odi-1 bp-1 mri-1 note-1"),
    ("sa-erika", "Condition", "", "cond-1 cond-2"),
    ("sa-hans", "Appointment", "", "appt-2 appt-3"),
    ("sa-erika", "ServiceRequest", "", "sr-1 sr-2"),
    ("sa-erika", "CarePlan", "status=active", "cp-1 cp-2"),
    ("sa-sabine", "RiskAssessment", "", "ra-3"),
    ("sa-klaus", "Observation", "", ""),
]


@pytest.mark.parametrize(
    ("patient", "rtype", "query", "expected"),
    COMPARTMENT,
    ids=[f"{p}-{t}-{q or 'all'}" for p, t, q, _ in COMPARTMENT],
)
def test_compartment_search(
    client: httpx.Client, dataset: Loaded, patient: str, rtype: str, query: str, expected: str
) -> None:
    path = f"/Patient/{patient}/{rtype}"
    bundle = search_ok(client, path, tagged(dataset, query))
    assert sorted(names(bundle)) == sorted(expected.split())
    assert bundle["total"] == len(expected.split())
    assert (link(bundle, "self") or "").startswith(f"{dataset.base}{path}")


def test_compartment_search_with_include(client: httpx.Client, dataset: Loaded) -> None:
    pairs = tagged(dataset, "_include=Condition:asserter")
    bundle = search_ok(client, "/Patient/sa-hans/Condition", pairs)
    assert names(bundle) == ["cond-3"]
    assert names(bundle, "include") == ["prac-oezdemir"]


# --- _has, chains and escapes, checked against step-by-step searches -------------------


def ids_of(client: httpx.Client, dataset: Loaded, rtype: str, query: str) -> list[str]:
    bundle = search_ok(client, f"/{rtype}", tagged(dataset, f"{query}&_count=100"))
    return sorted(r["id"] for r in entries(bundle, "match"))


def test_two_link_chain_equals_step_by_step(client: httpx.Client, dataset: Loaded) -> None:
    orgs = ids_of(client, dataset, "Organization", "name=mvz")
    patients = ids_of(client, dataset, "Patient", "organization=" + ",".join(orgs))
    by_steps = ids_of(client, dataset, "ServiceRequest", "subject=" + ",".join(patients))
    chained = ids_of(client, dataset, "ServiceRequest", "subject:Patient.organization.name=mvz")
    assert chained == by_steps
    assert [short(i) for i in chained] == sorted(
        ["sr-3", "sr-4", "sr-5", "sr-6", "sr-7", "sr-8", "sr-9"]
    )


def test_has_equals_step_by_step(client: httpx.Client, dataset: Loaded) -> None:
    observations = search_ok(client, "/Observation", tagged(dataset, "code=97909-6&_count=100"))
    subjects = {r["subject"]["reference"].split("/")[-1] for r in entries(observations, "match")}
    has = ids_of(client, dataset, "Patient", "_has:Observation:patient:code=97909-6")
    assert has == sorted(subjects)
    assert [short(i) for i in has] == ["erika", "hans", "sabine"]


def test_escaped_comma_is_one_value(client: httpx.Client, dataset: Loaded) -> None:
    def orgs(query: str) -> list[str]:
        return sorted(short(i) for i in ids_of(client, dataset, "Organization", query))

    assert orgs(r"name=MVZ Rückenzentrum Nord\, Standort") == ["org-mvz"]
    assert orgs(r"name=MVZ Rückenzentrum Nord\,AOK") == []  # one literal value, no OR
    assert orgs("name=MVZ Rückenzentrum Nord,AOK") == ["org-kk", "org-mvz", "org-mvz2"]


# --- _include:iterate to the end of a chain -----------------------------------------------


def test_include_iterate_follows_a_long_chain(client: httpx.Client) -> None:
    """Six revisions of a care plan, each based on the previous one."""
    token, code = own_tag()
    ids = [f"sa-rev-{uuid.uuid4().hex[:8]}-{i}" for i in range(6)]
    entries_ = []
    for i, rid_ in enumerate(ids):
        plan: dict[str, Any] = {
            "resourceType": "CarePlan",
            "id": rid_,
            "meta": {"tag": [{"system": TEST_SYSTEM, "code": code}]},
            "status": "active" if i == 5 else "revoked",
            "intent": "plan",
            "subject": {"display": "Erika Müller"},
        }
        if i:
            plan["basedOn"] = [{"reference": f"CarePlan/{ids[i - 1]}"}]
        entries_.append({"resource": plan, "request": {"method": "PUT", "url": f"CarePlan/{rid_}"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries_}
    r = client.post("", json=bundle, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200, r.text[:1000]
    pairs = [("_tag", token), ("status", "active"), ("_include:iterate", "CarePlan:based-on")]
    found = search_ok(client, "/CarePlan", pairs)
    assert [r["id"] for r in entries(found, "match")] == [ids[5]]
    assert sorted(r["id"] for r in entries(found, "include")) == sorted(ids[:5])


# --- more contexts: paging a system search, absolute references, searches in a batch ------


def test_system_search_paging_keeps_type(client: httpx.Client, dataset: Loaded) -> None:
    pairs = tagged(dataset, "_type=Patient,Organization&_sort=_id&_count=5")
    page = search_ok(client, "", pairs)
    seen = names(page)
    assert page["total"] == 14
    while (url := link(page, "next")) is not None:
        assert len(seen) <= 14
        page = follow(client, url)
        seen += names(page)
    assert sorted(seen) == sorted([*ALL_PATIENTS, "org-ukh", "org-mvz", "org-mvz2", "org-kk"])


def test_absolute_reference_to_this_server(client: httpx.Client, dataset: Loaded) -> None:
    """A reference written as an absolute URL on this server's base is a local reference."""
    token, code = own_tag()
    tag = {"tag": [{"system": TEST_SYSTEM, "code": code}]}
    pid = f"sa-abs-{uuid.uuid4().hex[:10]}"
    person = {"resourceType": "Patient", "id": pid, "meta": tag, "name": [{"family": "Absolut"}]}
    condition = {
        "resourceType": "Condition",
        "meta": tag,
        "code": {"text": "Rückenschmerz"},
        "subject": {"reference": f"{dataset.base}/Patient/{pid}"},
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": person, "request": {"method": "PUT", "url": f"Patient/{pid}"}},
            {"resource": condition, "request": {"method": "POST", "url": "Condition"}},
        ],
    }
    r = client.post("", json=bundle, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200, r.text[:1000]
    for query in (
        f"subject=Patient/{pid}",
        f"subject={pid}",
        f"subject={dataset.base}/Patient/{pid}",
        "subject:Patient.family=absolut",
    ):
        found = search_ok(client, "/Condition", [*parse_query(query), ("_tag", token)])
        assert len(names(found)) == 1, query
    found = search_ok(client, "/Condition", [("_tag", token), ("_include", "Condition:subject")])
    assert [r["id"] for r in entries(found, "include")] == [pid]
    found = search_ok(client, "/Patient", [("_tag", token), ("_revinclude", "Condition:subject")])
    assert len(entries(found, "include")) == 1


def test_search_inside_a_batch(client: httpx.Client, dataset: Loaded) -> None:
    url = f"Patient?family=müller&_tag={dataset.tag}"
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}}],
    }
    r = client.post("", json=bundle, headers={"Content-Type": FHIR_JSON})
    assert r.status_code == 200, r.text[:500]
    entry = r.json()["entry"][0]
    assert entry["response"]["status"].startswith("200"), entry
    assert entry["resource"]["type"] == "searchset"
    assert names(entry["resource"]) == ["erika"]


ROUND_TRIP = [
    ("Organization", r"name=MVZ Rückenzentrum Nord\, Standort", "org-mvz"),
    ("ServiceRequest", r"identifier=urn:ivz:auftrag|SR\|2025\|0009", "sr-9"),
    ("Observation", "code-value-quantity=http://loinc.org|97909-6$gt40", "odi-1 odi-2"),
    ("Observation", r"value-string:exact=Keine Red Flags\, keine Parese", "note-1"),
    ("Patient", "phone=+49 6221 123456", "erika"),
    ("Patient", "family=Müller,Weiß&birthdate=ge1970", "anna bernd"),
]


@pytest.mark.parametrize(
    ("rtype", "query", "expected"), ROUND_TRIP, ids=[q.split("=")[0] for _, q, _ in ROUND_TRIP]
)
def test_self_link_repeats_the_search(
    client: httpx.Client, dataset: Loaded, rtype: str, query: str, expected: str
) -> None:
    """The self link, escapes and non-ASCII included, runs the same search again."""
    bundle = search_ok(client, f"/{rtype}", tagged(dataset, query))
    assert sorted(names(bundle)) == sorted(expected.split())
    again = follow(client, link(bundle, "self") or "")
    assert sorted(names(again)) == sorted(expected.split())

"""Write-time index values (fhir_server.search.extract), mostly on the official examples."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from fhir_server.search.extract import (
    MAX_DATE,
    MIN_DATE,
    CompositeValue,
    DateValue,
    IndexValues,
    NumberValue,
    PositionValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    date_range,
    extract,
    normalize,
    number_range,
)
from fhir_server.search.registry import Registry, default_registry
from tests.search import example, examples

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def rows(values: IndexValues, param: str) -> list[Any]:
    return [row for row in values.rows() if row.param == param]


def one(values: IndexValues, param: str) -> Any:
    [row] = rows(values, param)
    return row


def day(text: str) -> tuple[datetime, datetime]:
    low = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return low, low + timedelta(days=1)


# ------------------------------------------------------------------------- Patient-example


def test_patient_example_names_give_name_family_and_given_strings() -> None:
    values = extract(example("Patient-example.json"))
    assert {r.exact for r in rows(values, "family")} == {"Chalmers", "Windsor"}
    assert {r.exact for r in rows(values, "given")} == {"Peter", "James", "Jim"}
    assert {r.normalized for r in rows(values, "name")} == {
        "chalmers",
        "windsor",
        "peter",
        "james",
        "jim",
    }


def test_patient_example_address_expands_to_its_parts() -> None:
    values = extract(example("Patient-example.json"))
    exact = {r.exact for r in rows(values, "address")}
    assert {"534 Erewhon St", "PleasantVille", "Rainbow", "Vic", "3999"} <= exact
    assert one(values, "address-city") == StringValue(
        "address-city", "pleasantville", "PleasantVille"
    )


def test_patient_example_identifier_token_carries_its_type_for_of_type() -> None:
    values = extract(example("Patient-example.json"))
    assert one(values, "identifier") == TokenValue(
        "identifier",
        "urn:oid:1.2.36.146.595.217.0.1",
        "12345",
        None,
        "http://terminology.hl7.org/CodeSystem/v2-0203",
        "MR",
    )


def test_patient_example_birthdate_covers_the_whole_day() -> None:
    values = extract(example("Patient-example.json"))
    assert one(values, "birthdate") == DateValue("birthdate", *day("1974-12-25"))


def test_patient_example_primitive_tokens_have_no_system() -> None:
    values = extract(example("Patient-example.json"))
    assert one(values, "gender") == TokenValue("gender", None, "male")
    assert one(values, "active") == TokenValue("active", None, "true")
    assert one(values, "deceased") == TokenValue("deceased", None, "false")
    # _id and _lastUpdated are columns of the resources table: no index rows
    assert rows(values, "_id") == []


def test_patient_example_contact_points_use_their_system_as_token_system() -> None:
    values = extract(example("Patient-example.json"))
    phones = {(r.system, r.code) for r in rows(values, "phone")}
    assert ("phone", "(03) 5555 6473") in phones
    assert rows(values, "email") == []


def test_patient_example_managing_organization_is_a_reference() -> None:
    values = extract(example("Patient-example.json"))
    assert one(values, "organization") == ReferenceValue("organization", "Organization", "1")


# --------------------------------------------------------------------- Observation-example


def test_observation_example_code_tokens_keep_display_for_text_search() -> None:
    values = extract(example("Observation-example.json"))
    codes = rows(values, "code")
    assert TokenValue("code", LOINC, "29463-7", "body weight") in codes
    assert {r.code for r in codes} == {"29463-7", "3141-9", "27113001", "body-weight"}


def test_observation_example_subject_and_patient_references() -> None:
    values = extract(example("Observation-example.json"))
    assert one(values, "subject") == ReferenceValue("subject", "Patient", "example")
    assert one(values, "patient") == ReferenceValue("patient", "Patient", "example")


def test_observation_example_effective_date_range() -> None:
    values = extract(example("Observation-example.json"))
    assert one(values, "date") == DateValue("date", *day("2016-03-28"))


def test_observation_example_value_quantity_with_precision_range() -> None:
    values = extract(example("Observation-example.json"))
    assert one(values, "value-quantity") == QuantityValue(
        "value-quantity", Decimal(185), Decimal("184.5"), Decimal("185.5"), UCUM, "[lb_av]", "lbs"
    )


def test_observation_example_code_value_quantity_composite_pairs_each_code() -> None:
    values = extract(example("Observation-example.json"))
    composites = rows(values, "code-value-quantity")
    assert len(composites) == 4
    first = composites[0]
    assert isinstance(first, CompositeValue)
    assert first.components[0] == TokenValue("code", LOINC, "29463-7", "body weight")
    assert first.components[1] == one(values, "value-quantity")._replace(param="value-quantity")


def test_components_of_a_combo_composite_pair_within_each_component() -> None:
    values = extract(example("Observation-blood-pressure.json"))
    pairs = {
        (row.components[0].code, row.components[1].value)
        for row in rows(values, "component-code-value-quantity")
    }
    assert {("8480-6", Decimal(107)), ("8462-4", Decimal(60))} <= pairs
    assert ("8480-6", Decimal(60)) not in pairs


# ------------------------------------------------------------------------ types and rules


def test_multi_base_parameter_only_evaluates_its_own_part() -> None:
    values = extract(example("Condition-example.json"))
    assert {(r.system, r.code) for r in rows(values, "code")} == {
        ("http://snomed.info/sct", "39065001"),
        (None, None),
    }
    assert TokenValue("code", None, None, "burnt ear") in rows(values, "code")


def test_choice_type_value_string_goes_to_the_string_parameter() -> None:
    values = extract(example("Observation-eye-color.json"))
    assert one(values, "value-string") == StringValue("value-string", "blue", "blue")
    assert rows(values, "value-quantity") == []


def test_choice_type_value_codeable_concept_goes_to_the_concept_parameter() -> None:
    values = extract(example("Observation-10minute-apgar-score.json"))
    assert rows(values, "component-value-concept")
    assert rows(values, "value-concept") == []


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2026", "2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
        ("2026-01", "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"),
        ("2026-12", "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
        ("2024-02-29", "2024-02-29T00:00:00+00:00", "2024-03-01T00:00:00+00:00"),
        ("2026-01-05T10:00:00Z", "2026-01-05T10:00:00+00:00", "2026-01-05T10:00:01+00:00"),
        (
            "2026-01-05T10:00:00.5+01:00",
            "2026-01-05T09:00:00.500000+00:00",
            "2026-01-05T09:00:00.600000+00:00",
        ),
        ("2026-01-05T10:00:00", "2026-01-05T10:00:00+00:00", "2026-01-05T10:00:01+00:00"),
    ],
)
def test_date_range_covers_the_precision_of_the_value(text: str, low: str, high: str) -> None:
    assert date_range(text) == (datetime.fromisoformat(low), datetime.fromisoformat(high))


def test_date_range_results_are_utc() -> None:
    found = date_range("2026-01-05T23:30:00-05:00")
    assert found is not None and found[0].tzinfo == UTC
    assert found[0] == datetime(2026, 1, 6, 4, 30, tzinfo=UTC)


def test_date_range_rejects_text_that_is_not_a_date() -> None:
    assert date_range("yesterday") is None
    assert date_range("2026-13") is None
    last = date_range("9999-12-31")
    assert last is not None and last[1] == MAX_DATE


def test_period_with_an_open_end_extends_to_the_maximum() -> None:
    encounter = {"resourceType": "Encounter", "period": {"start": "2026-01-05"}}
    low, _ = day("2026-01-05")
    assert one(extract(encounter), "date") == DateValue("date", low, MAX_DATE)
    ended = {"resourceType": "Encounter", "period": {"end": "2026-01"}}
    assert one(extract(ended), "date") == DateValue("date", MIN_DATE, day("2026-02-01")[0])


def test_timing_covers_its_bounds_and_events() -> None:
    values = extract(example("CarePlan-preg.json"))
    spans = {
        (r.low.date().isoformat(), r.high.date().isoformat()) for r in rows(values, "activity-date")
    }
    assert ("2013-02-14", "2013-03-01") in spans
    request = {
        "resourceType": "ServiceRequest",
        "occurrenceTiming": {"event": ["2026-01-05", "2026-01-02"], "repeat": {"count": 2}},
    }
    assert one(extract(request), "occurrence") == DateValue(
        "occurrence", day("2026-01-02")[0], day("2026-01-05")[1]
    )


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("100", "99.5", "100.5"),
        ("100.00", "99.995", "100.005"),
        ("1E+2", "50", "150"),
        ("0.02", "0.015", "0.025"),
    ],
)
def test_number_range_follows_the_written_precision(value: str, low: str, high: str) -> None:
    assert number_range(Decimal(value)) == (Decimal(low), Decimal(high))


def test_number_parameter_on_a_decimal() -> None:
    values = extract(example("RiskAssessment-cardiac.json"))
    assert one(values, "probability") == NumberValue(
        "probability", Decimal("0.02"), Decimal("0.015"), Decimal("0.025")
    )


def test_quantity_comparator_opens_the_range() -> None:
    obs = {"resourceType": "Observation", "valueQuantity": {"value": 5, "comparator": "<"}}
    row = one(extract(obs), "value-quantity")
    assert (row.value, row.low, row.high) == (Decimal(5), None, Decimal("5.5"))


def test_range_values_index_their_bounds() -> None:
    condition = {
        "resourceType": "Condition",
        "onsetRange": {"low": {"value": 10, "unit": "a", "system": UCUM, "code": "a"}},
    }
    assert one(extract(condition), "onset-age") == QuantityValue(
        "onset-age", None, Decimal("9.5"), None, UCUM, "a", "a"
    )


def test_money_is_a_quantity_in_iso_4217() -> None:
    values = extract(example("Invoice-example.json"))
    assert one(values, "totalgross") == QuantityValue(
        "totalgross",
        Decimal(48),
        Decimal("47.5"),
        Decimal("48.5"),
        "urn:iso:std:iso:4217",
        "EUR",
        None,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Müller", "muller"),
        ("MÜLLER", "muller"),
        ("Straße", "strasse"),
        ("Bénédicte du Marché", "benedicte du marche"),
        ("ﬁne", "fine"),
        ("Chalmers", "chalmers"),
    ],
)
def test_normalize_ignores_case_and_accents(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_muller_finds_mueller_by_normalised_prefix() -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Müller"}]}
    [row] = rows(extract(patient), "family")
    assert row == StringValue("family", "muller", "Müller")
    assert row.normalized.startswith(normalize("mull"))


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ({"reference": "Patient/1"}, ("Patient", "1", None, None)),
        ({"reference": "Patient/1/_history/3"}, ("Patient", "1", "3", None)),
        (
            {"reference": "http://other.org/fhir/Patient/1"},
            ("Patient", "1", None, "http://other.org/fhir/Patient/1"),
        ),
        ({"reference": "urn:uuid:61ebe359-bfdc"}, (None, None, None, "urn:uuid:61ebe359-bfdc")),
        (
            {"reference": "urn:uuid:61ebe359-bfdc", "type": "Patient"},
            ("Patient", None, None, "urn:uuid:61ebe359-bfdc"),
        ),
    ],
)
def test_reference_forms(reference: dict[str, Any], expected: tuple[Any, ...]) -> None:
    row = one(extract({"resourceType": "Observation", "subject": reference}), "subject")
    assert (row.target_type, row.target_id, row.version, row.url) == expected


def test_reference_by_identifier_only() -> None:
    subject = {"identifier": {"system": "urn:ssn", "value": "1"}, "type": "Patient"}
    row = one(extract({"resourceType": "Observation", "subject": subject}), "subject")
    assert row == ReferenceValue("subject", "Patient", None, None, None, "urn:ssn", "1")


def test_contained_reference_is_kept_for_chains_only() -> None:
    obs = {
        "resourceType": "Observation",
        "contained": [{"resourceType": "Patient", "id": "p"}],
        "subject": {"reference": "#p"},
    }
    row = one(extract(obs), "subject")
    assert (row.target_type, row.target_id, row.url) == ("#", "p", None)


def test_absolute_reference_to_this_server_is_stored_as_local() -> None:
    obs = {"resourceType": "Observation", "subject": {"reference": "https://me/fhir/Patient/1"}}
    row = one(extract(obs, base_url="https://me/fhir/"), "subject")
    assert (row.target_type, row.target_id, row.url) == ("Patient", "1", None)


def test_canonical_reference_keeps_url_and_version() -> None:
    plan = {
        "resourceType": "PlanDefinition",
        "status": "draft",
        "relatedArtifact": [
            {"type": "depends-on", "resource": "http://example.org/fhir/Library/lib|1.2"}
        ],
    }
    assert one(extract(plan), "depends-on") == ReferenceValue(
        "depends-on", "Library", "lib", "1.2", "http://example.org/fhir/Library/lib"
    )


def test_uri_parameter_keeps_the_uri() -> None:
    valueset = {"resourceType": "ValueSet", "status": "draft", "url": "http://x.org/vs"}
    assert one(extract(valueset), "url") == UriValue("url", "http://x.org/vs")


def test_meta_parameters_of_every_resource() -> None:
    patient = {
        "resourceType": "Patient",
        "meta": {
            "lastUpdated": "2026-01-05T10:00:00.123Z",
            "profile": ["http://example.org/StructureDefinition/p"],
            "tag": [{"system": "urn:t", "code": "a"}],
            "source": "urn:src",
        },
    }
    values = extract(patient)
    assert rows(values, "_lastUpdated") == []  # searched on resources.last_updated
    assert one(values, "_profile").uri == "http://example.org/StructureDefinition/p"
    assert one(values, "_tag") == TokenValue("_tag", "urn:t", "a")
    assert one(values, "_source") == UriValue("_source", "urn:src")


def test_location_position_is_indexed_for_near() -> None:
    values = extract(example("Location-1.json"))
    assert one(values, "near") == PositionValue(
        "near", Decimal("42.25475478"), Decimal("-83.6945691")
    )


def test_bundle_composition_is_its_first_entry_when_that_is_a_composition() -> None:
    values = extract(example("Bundle-father.json"))
    row = one(values, "composition")
    assert (row.target_type, row.target_id) == (
        "Composition",
        "180f219f-97a8-486d-99d9-ed631fe4fc57",
    )
    assert rows(values, "message") == []


def test_custom_parameter_is_extracted_after_add() -> None:
    registry = Registry.standard()
    registry.add(
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/fhir/SearchParameter/birth-time",
            "code": "birth-time",
            "base": ["Patient"],
            "type": "string",
            "status": "active",
            "expression": "Patient.name.where(use = 'official').family",
        }
    )
    values = extract(example("Patient-example.json"), registry)
    assert one(values, "birth-time") == StringValue("birth-time", "chalmers", "Chalmers")


def test_rows_are_deduplicated() -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Ann"}, {"family": "Ann"}]}
    assert len(rows(extract(patient), "family")) == 1


def test_values_of_the_wrong_json_type_are_skipped() -> None:
    obs = {
        "resourceType": "Observation",
        "code": "not-a-concept",
        "effectiveDateTime": "someday",
        "valueQuantity": {"value": "12"},
        "subject": ["Patient/1"],
    }
    values = extract(obs)
    assert rows(values, "code") == rows(values, "date") == rows(values, "subject") == []
    assert rows(values, "value-quantity") == []


def test_params_lists_parameters_that_have_values() -> None:
    values = extract(example("Observation-example.json"))
    assert {"code", "subject", "date", "value-quantity"} <= values.params()
    assert "value-string" not in values.params()


# ---------------------------------------------------------------------- all examples, speed


def test_every_official_example_extracts_without_error() -> None:
    registry = default_registry()
    counts: Counter[str] = Counter()
    for resource in examples().values():
        for row in extract(resource, registry).rows():
            counts[type(row).__name__] += 1
    print(f"\nindex rows from {len(examples())} official examples: {dict(counts)}")
    assert len(examples()) > 5000
    kinds = {
        StringValue,
        TokenValue,
        DateValue,
        NumberValue,
        QuantityValue,
        ReferenceValue,
        UriValue,
        CompositeValue,
        PositionValue,
    }
    assert {kind.__name__ for kind in kinds} == set(counts)


@pytest.mark.parametrize(
    "name",
    [
        "Patient-example.json",
        "Observation-example.json",
        "ServiceRequest-example.json",
        "Bundle-dataelements.json",
    ],
)
def test_extraction_takes_under_a_millisecond(name: str) -> None:
    resource = example(name)
    registry = default_registry()
    extract(resource, registry)
    timings = []
    for _ in range(30):
        start = time.perf_counter()
        extract(resource, registry)
        timings.append(time.perf_counter() - start)
    best, median = min(timings) * 1e6, statistics.median(timings) * 1e6
    print(f"\n{name}: min {best:.0f} us, median {median:.0f} us")
    assert min(timings) < 0.001


# ------------------------------------------------------------- plans: skipping absent roots


def test_branches_that_yield_from_nothing_run_on_every_resource() -> None:
    """``exists()`` answers ``false`` on a resource without the element: the plan must not
    skip it for lack of its root key (only branches that read a key are skipped)."""
    registry = Registry.standard()
    registry.add(
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/fhir/SearchParameter/has-deceased",
            "code": "has-deceased",
            "base": ["Patient"],
            "type": "token",
            "status": "active",
            "expression": "Patient.deceased.exists()",
        }
    )
    assert one(extract({"resourceType": "Patient"}, registry), "has-deceased") == TokenValue(
        "has-deceased", None, "false"
    )
    found = extract({"resourceType": "Patient", "deceasedBoolean": False}, registry)
    assert one(found, "has-deceased") == TokenValue("has-deceased", None, "true")


def test_rows_do_not_depend_on_key_order() -> None:
    obs = example("Observation-example.json")
    reordered = dict(reversed(list(obs.items())))
    assert extract(obs) == extract(reordered)


def test_each_shape_of_a_type_runs_what_its_keys_need() -> None:
    # What runs is chosen once per set of keys: resources with other keys must not reuse it.
    code = {"coding": [{"system": LOINC, "code": "8480-6"}]}
    quantity = {"resourceType": "Observation", "code": code, "valueQuantity": {"value": 1}}
    string = {"resourceType": "Observation", "code": code, "valueString": "high"}
    for _ in range(2):
        # (combo-code-value-quantity is a union, read from these rows: Registry.unions)
        assert [r.param for r in extract(quantity).composites] == ["code-value-quantity"]
        assert [r.param for r in extract(string).composites] == ["code-value-string"]
        assert rows(extract({"resourceType": "Observation"}), "code") == []


def test_composite_components_equal_their_parameters_rows() -> None:
    # A component reading the same element as a parameter reuses that parameter's rows.
    obs = example("Observation-example.json")
    values = extract(obs)
    code, quantity = rows(values, "code-value-quantity")[0].components
    assert code in rows(values, "code")
    assert quantity == one(values, "value-quantity")


def test_plan_follows_added_parameters() -> None:
    registry = Registry.standard()
    patient = {"resourceType": "Patient", "birthDate": "1970-01-01"}
    assert rows(extract(patient, registry), "born") == []
    registry.add(
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/fhir/SearchParameter/born",
            "code": "born",
            "base": ["Patient"],
            "type": "date",
            "status": "active",
            "expression": "Patient.birthDate",
        }
    )
    assert len(rows(extract(patient, registry), "born")) == 1

"""Scope grammar and granting (no server needed)."""

from __future__ import annotations

from fhir_server.auth.policy import bundle_needs, needs
from fhir_server.auth.scopes import grant, parse_scope, permits


def test_v2_letters_must_be_in_order() -> None:
    assert parse_scope("system/Patient.rs") is not None
    assert parse_scope("system/Patient.sr") is None


def test_non_system_scopes_are_ignored() -> None:
    assert grant(["patient/*.rs", "openid"], ["system/*.cruds"]) == []


def test_wildcard_request_narrows_to_allowed_types() -> None:
    granted = grant(["system/*.rs"], ["system/Patient.cruds", "system/Coverage.r"])
    assert granted == ["system/Coverage.r", "system/Patient.rs"]


def test_permits_by_type_and_letter() -> None:
    assert permits(["system/*.r"], "Patient", "r")
    assert not permits(["system/Patient.r"], "Patient", "s")


def test_compartment_search_needs_read_and_search() -> None:
    assert needs("GET", "/fhir/Patient/1/Observation", "", "/fhir") == [
        ("Patient", "r"),
        ("Observation", "s"),
    ]


def test_bundle_entries_each_need_their_rights() -> None:
    bundle = {
        "entry": [
            {"request": {"method": "DELETE", "url": "Observation/1"}},
            {"request": {"method": "GET", "url": "Patient?name=x"}},
        ]
    }
    assert bundle_needs(bundle, "/fhir") == [("Observation", "d"), ("Patient", "s")]


def test_a_bulk_client_with_read_scopes_may_poll_and_fetch_its_export() -> None:
    from fhir_server.auth.policy import missing, needs

    for path in ("/fhir/$export", "/fhir/$export-status/abc", "/fhir/$export-file/abc/x.ndjson"):
        assert missing(["system/*.rs"], needs("GET", path, "", "/fhir") or []) == [], path

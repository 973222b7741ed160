def test_a_header_value_http_cannot_carry_is_refused() -> None:
    """A non-Latin-1 value used to make every delivery attempt crash without being counted."""
    from fhir_server.fhir.outcomes import FhirError
    from fhir_server.subscriptions.criteria import parse_headers

    assert parse_headers(["X-Tenant: Zuerich"]) == (("X-Tenant", "Zuerich"),)
    try:
        parse_headers(["X-Tenant: Zürich ✓"])
    except FhirError as exc:
        assert exc.status == 422
    else:
        raise AssertionError("accepted")

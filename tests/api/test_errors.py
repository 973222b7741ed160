"""Every failure is an OperationOutcome with the right status and an expression."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import FHIR_JSON, create, issue, patient


def _post(client: httpx.Client, body: bytes, rtype: str = "Patient") -> httpx.Response:
    return client.post(f"/{rtype}", content=body, headers={"Content-Type": FHIR_JSON})


def test_malformed_json_is_400(client: httpx.Client) -> None:
    r = _post(client, b'{"resourceType": "Patient",')
    assert r.status_code == 400
    assert "not valid JSON" in issue(r)["diagnostics"]


def test_unknown_element_is_400_naming_it(client: httpx.Client) -> None:
    r = _post(client, b'{"resourceType":"Patient","favouriteColour":"blue"}')
    assert r.status_code == 400
    assert issue(r)["expression"] == ["Patient.favouriteColour"]


def test_wrong_required_binding_code_is_422_with_expression(client: httpx.Client) -> None:
    r = _post(client, b'{"resourceType":"Patient","gender":"M"}')
    assert r.status_code == 422
    assert issue(r)["expression"] == ["Patient.gender"]
    assert issue(r)["code"] == "code-invalid"


def test_bad_status_code_of_service_request_is_422(client: httpx.Client) -> None:
    body = (
        b'{"resourceType":"ServiceRequest","status":"bogus","intent":"order",'
        b'"subject":{"reference":"Patient/x"}}'
    )
    r = _post(client, body, "ServiceRequest")
    assert r.status_code == 422
    assert issue(r)["expression"] == ["ServiceRequest.status"]


def test_missing_mandatory_element_is_422(client: httpx.Client) -> None:
    r = _post(client, b'{"resourceType":"Observation","status":"final"}', "Observation")
    assert r.status_code == 422
    assert issue(r)["expression"] == ["Observation.code"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"resourceType":"Patient","active":"true"}', "Patient.active"),
        (b'{"resourceType":"Patient","birthDate":"12.04.1968"}', "Patient.birthDate"),
        (b'{"resourceType":"Patient","name":[{"given":"Erika"}]}', "Patient.name[0].given"),
    ],
)
def test_wrong_primitive_is_400_with_expression(
    client: httpx.Client, body: bytes, where: str
) -> None:
    r = _post(client, body)
    assert r.status_code == 400
    assert issue(r)["expression"] == [where]


def test_nan_and_duplicate_keys_are_400(client: httpx.Client) -> None:
    assert (
        _post(client, b'{"resourceType":"Patient","active":true,"active":false}').status_code == 400
    )
    body = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
        b'"valueQuantity":{"value":NaN}}'
    )
    assert _post(client, body, "Observation").status_code == 400


def test_a_decimal_beyond_64_bits_is_stored_as_written(client: httpx.Client) -> None:
    body = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
        b'"valueQuantity":{"value":12345678901234567890123}}'
    )
    created = _post(client, body, "Observation")
    assert created.status_code == 201
    again = client.get(created.headers["location"])
    assert b'"value":12345678901234567890123}' in again.content


def test_body_type_differs_from_url_type_is_400(client: httpx.Client) -> None:
    r = _post(client, b'{"resourceType":"Observation","status":"final","code":{"text":"x"}}')
    assert r.status_code == 400


def test_missing_resource_type_is_400(client: httpx.Client) -> None:
    assert _post(client, b'{"gender":"male"}').status_code == 400


def test_json_array_body_is_400(client: httpx.Client) -> None:
    assert _post(client, b"[1,2]").status_code == 400


def test_empty_body_is_400(client: httpx.Client) -> None:
    assert _post(client, b"").status_code == 400


def test_unknown_resource_type_is_404(client: httpx.Client) -> None:
    r = client.get("/Spaceship/1")
    assert r.status_code == 404
    assert issue(r)["code"] == "not-supported"


def test_invalid_id_in_url_is_400(client: httpx.Client) -> None:
    assert client.get("/Patient/" + "x" * 65).status_code == 400
    assert client.get("/Patient/a_b").status_code == 400


def test_method_not_allowed_is_405(client: httpx.Client) -> None:
    r = client.post("/Patient/some-id", json={}, headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 405
    assert issue(r)["code"] == "not-supported"


def test_unknown_path_is_404_operation_outcome(client: httpx.Client) -> None:
    r = client.get("/Patient/1/_history/1/extra")
    assert r.status_code == 404
    assert issue(r)


def test_contained_resource_error_points_inside_it(client: httpx.Client) -> None:
    body = (
        b'{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o",'
        b'"bogus":1}]}'
    )
    r = _post(client, body)
    assert r.status_code == 400
    assert issue(r)["expression"][0].startswith("Patient.contained[0]")


def test_errors_are_rendered_as_xml_when_asked(client: httpx.Client) -> None:
    r = client.get("/Patient/unknown-xml", headers={"Accept": "application/fhir+xml"})
    assert r.status_code == 404
    assert b"<OperationOutcome" in r.content


def test_invalid_summary_value_is_400(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    assert client.get(f"/Patient/{rid}", params={"_summary": "maybe"}).status_code == 400


def test_bad_since_is_400(client: httpx.Client) -> None:
    assert client.get("/Patient/_history", params={"_since": "last tuesday"}).status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "/Patient?family=a%00b",
        "/Patient?fam%00ily=x",
        "/Patient?name:contains=%01",
        "/AuditEvent?agent=a%00b",
        "/AuditEvent?entity=Patient/a%00b",
    ],
)
def test_control_characters_in_search_parameters_are_400(client: httpx.Client, query: str) -> None:
    r = client.get(query)
    assert r.status_code == 400, r.text
    assert "control character" in issue(r)["diagnostics"]


def test_control_characters_in_a_conditional_create_are_400(client: httpx.Client) -> None:
    r = client.post(
        "/Patient",
        content=b'{"resourceType": "Patient"}',
        headers={"Content-Type": FHIR_JSON, "If-None-Exist": "family=a%00b"},
    )
    assert r.status_code == 400, r.text


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        (
            b'{"resourceType": "Patient", "identifier": [{"system": "urn:a\\u0000"}]}',
            "Patient.identifier[0].system",
        ),
        (
            b'{"resourceType": "Patient", "meta": {"tag": [{"code": "t\\u0001"}]}}',
            "Patient.meta.tag[0].code",
        ),
    ],
)
def test_control_characters_in_uri_and_code_values_are_400_with_expression(
    client: httpx.Client, body: bytes, expression: str
) -> None:
    r = _post(client, body)
    assert r.status_code == 400, r.text
    assert issue(r)["expression"] == [expression]


def test_escaped_backslashes_are_not_control_characters(client: httpx.Client) -> None:
    r = _post(client, b'{"resourceType": "Patient", "name": [{"text": "a\\\\b\\\\f"}]}')
    assert r.status_code == 201, r.text

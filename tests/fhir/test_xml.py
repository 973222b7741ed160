"""FHIR XML <-> JSON conversion (http://hl7.org/fhir/R4/xml.html).

The official examples round-trip JSON -> XML -> JSON. Narrative divs are compared after
XML canonicalisation: an XML parser cannot keep the exact text (``&quot;`` vs ``"``,
``<br />`` vs ``<br/>``), only the XHTML infoset, and that is what must survive.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from collections import defaultdict
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from fhir_server.fhir.structure import resource_types
from fhir_server.fhir.xml import XmlFormatError, resource_to_xml, xml_to_resource

EXAMPLES = Path(__file__).resolve().parents[3] / "shared/fhir-r4/hl7.fhir.r4.examples-4.0.1.tgz"
#: Examples above this size (the spec's definition bundles, ~130 MB) run only on request.
LARGE = 300_000
ALL_EXAMPLES = os.environ.get("IVZ_ALL_EXAMPLES") == "1"
F = "http://hl7.org/fhir"
XHTML = "http://www.w3.org/1999/xhtml"
#: The first resourceType in an example is its own (official examples list it first).
RESOURCE_TYPE = re.compile(rb'"resourceType"\s*:\s*"(\w+)"')


# ------------------------------------------------------------------------- helpers


@cache
def _examples() -> dict[str, dict[str, bytes]]:
    """Official examples by form ("json"/"xml"): member name -> bytes. Read once."""
    found: dict[str, dict[str, bytes]] = {"json": {}, "xml": {}}
    if not EXAMPLES.is_file():
        pytest.skip(f"official examples not found at {EXAMPLES}")
    with tarfile.open(EXAMPLES) as tar:
        for member in tar:
            name = Path(member.name).name
            form = name.rsplit(".", 1)[-1]
            handle = tar.extractfile(member) if form in found else None
            if handle is not None and name != "package.json":
                found[form][name] = handle.read()
    return found


@cache
def _json_examples(large: bool) -> dict[str, list[tuple[str, bytes]]]:
    """JSON examples by resource type, either those up to LARGE bytes or those above."""
    by_type: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for name, data in _examples()["json"].items():
        if (len(data) > LARGE) == large:
            match = RESOURCE_TYPE.search(data)
            by_type[match.group(1).decode() if match else "?"].append((name, data))
    return by_type


def _load(data: bytes) -> Any:
    return json.loads(data, parse_float=Decimal)


def _canonical_div(div: str, squash_space: bool) -> str:
    text = etree.tostring(etree.fromstring(div.encode()), encoding="unicode")
    return " ".join(text.split()) if squash_space else text


def _comparable(value: Any, squash_space: bool = False, key: str = "") -> Any:
    """Tag each JSON value with its type: ``True == 1`` and ``1.0 == 1.00`` must not pass."""
    if key == "div" and isinstance(value, str):
        return ("div", _canonical_div(value, squash_space))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | Decimal):
        return ("number", str(value))  # keeps the written precision of decimals
    if isinstance(value, dict):
        return {k: _comparable(v, squash_space, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v, squash_space) for v in value]
    return value


def _round_trip(resource: dict[str, Any], pretty: bool = False) -> dict[str, Any]:
    return xml_to_resource(resource_to_xml(resource, pretty=pretty))


def _patient_xml(body: str) -> bytes:
    return f'<Patient xmlns="{F}">{body}</Patient>'.encode()


def _error(data: bytes) -> XmlFormatError:
    with pytest.raises(XmlFormatError) as info:
        xml_to_resource(data)
    return info.value


# ------------------------------------------------------------- official examples


@pytest.mark.parametrize("resource_type", sorted(resource_types()))
def test_official_json_examples_round_trip_through_xml(resource_type: str) -> None:
    examples = _json_examples(large=False).get(resource_type)
    if not examples:
        pytest.skip(f"no official example of {resource_type} up to {LARGE} bytes")
    failures = []
    for name, data in examples:
        original = _load(data)
        assert original["resourceType"] == resource_type, name
        try:
            back = _round_trip(original)
        except XmlFormatError as exc:
            failures.append(f"{name}: {exc}")
            continue
        if _comparable(back) != _comparable(original):
            failures.append(name)
    assert failures == []


@pytest.mark.skipif(not ALL_EXAMPLES, reason="set IVZ_ALL_EXAMPLES=1 (130 MB, ~20 s)")
def test_large_official_json_examples_round_trip_through_xml() -> None:
    examples = [item for items in _json_examples(large=True).values() for item in items]
    assert len(examples) > 40
    for name, data in examples:
        original = _load(data)
        assert _comparable(_round_trip(original)) == _comparable(original), name


def test_official_xml_examples_parse_to_the_official_json() -> None:
    """Run when the examples package carries XML too (the 4.0.1 npm package does not)."""
    xml_examples, json_examples = _examples()["xml"], _examples()["json"]
    if not xml_examples:
        pytest.skip(f"{EXAMPLES.name} holds only JSON examples; see the spec fixtures below")
    for name, data in xml_examples.items():
        expected = _load(json_examples[name.removesuffix(".xml") + ".json"])
        got = xml_to_resource(data)
        assert _comparable(got, squash_space=True) == _comparable(expected, squash_space=True)


def test_patient_examples_round_trip_quickly() -> None:
    examples = _json_examples(large=False).get("Patient")
    if not examples:
        pytest.skip(f"official examples not found at {EXAMPLES}")
    resources = [_load(data) for _, data in examples]
    for resource in resources:
        _round_trip(resource)


# ----------------------------------------------- hand-written XML per the spec text

SPEC_PATIENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<!-- comments are not part of the content -->
<Patient xmlns="{F}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <id value="pat1"/>
  <meta>
    <versionId value="3"/>
  </meta>
  <text>
    <status value="generated"/>
    <div xmlns="{XHTML}"><p>Peter <b>Chalmers</b></p></div>
  </text>
  <contained>
    <Organization>
      <id value="org"/>
      <name value="Acme"/>
    </Organization>
  </contained>
  <extension url="http://example.org/ext/eye-colour">
    <valueCode value="blue"/>
  </extension>
  <identifier id="i1">
    <system value="urn:oid:1.2.36.146.595.217.0.1"/>
    <value value="12345"/>
  </identifier>
  <active value="true"/>
  <name>
    <family value="Chalmers"/>
    <given value="Peter"/>
    <given id="g2">
      <extension url="http://example.org/ext/reason">
        <valueString value="unknown"/>
      </extension>
    </given>
    <given value="James"/>
  </name>
  <gender value="male"/>
  <birthDate value="1974-12-25">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1974-12-25T14:35:45-05:00"/>
    </extension>
  </birthDate>
  <deceasedBoolean value="false"/>
  <multipleBirthInteger value="2"/>
  <contact>
    <relationship>
      <coding>
        <system value="http://terminology.hl7.org/CodeSystem/v2-0131"/>
        <code value="N"/>
      </coding>
    </relationship>
  </contact>
  <managingOrganization>
    <reference value="#org"/>
  </managingOrganization>
</Patient>
""".encode()

SPEC_PATIENT_JSON: dict[str, Any] = {
    "resourceType": "Patient",
    "id": "pat1",
    "meta": {"versionId": "3"},
    "text": {
        "status": "generated",
        "div": f'<div xmlns="{XHTML}"><p>Peter <b>Chalmers</b></p></div>',
    },
    "contained": [{"resourceType": "Organization", "id": "org", "name": "Acme"}],
    "extension": [{"url": "http://example.org/ext/eye-colour", "valueCode": "blue"}],
    "identifier": [{"id": "i1", "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345"}],
    "active": True,
    "name": [
        {
            "family": "Chalmers",
            "given": ["Peter", None, "James"],
            "_given": [
                None,
                {
                    "id": "g2",
                    "extension": [
                        {"url": "http://example.org/ext/reason", "valueString": "unknown"}
                    ],
                },
                None,
            ],
        }
    ],
    "gender": "male",
    "birthDate": "1974-12-25",
    "_birthDate": {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                "valueDateTime": "1974-12-25T14:35:45-05:00",
            }
        ]
    },
    "deceasedBoolean": False,
    "multipleBirthInteger": 2,
    "contact": [
        {
            "relationship": [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}
                    ]
                }
            ]
        }
    ],
    "managingOrganization": {"reference": "#org"},
}


def test_spec_shaped_xml_parses_to_the_json_form() -> None:
    assert _comparable(xml_to_resource(SPEC_PATIENT)) == _comparable(SPEC_PATIENT_JSON)


def test_spec_shaped_json_serialises_to_equivalent_xml() -> None:
    ours = etree.fromstring(resource_to_xml(SPEC_PATIENT_JSON, pretty=True))
    theirs = etree.fromstring(SPEC_PATIENT)
    for tree in (ours, theirs):
        etree.strip_tags(tree, etree.Comment)
        etree.cleanup_namespaces(tree)
    assert etree.tostring(ours, method="c14n2", strip_text=True) == etree.tostring(
        theirs, method="c14n2", strip_text=True
    )


# --------------------------------------------------------------- serialisation rules


def test_output_has_declaration_and_fhir_namespace() -> None:
    xml = resource_to_xml({"resourceType": "Patient", "id": "x"})
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = etree.fromstring(xml)
    assert root.tag == f"{{{F}}}Patient"
    assert root[0].tag == f"{{{F}}}id" and root[0].get("value") == "x"


def test_elements_are_written_in_definition_order_whatever_the_dict_order() -> None:
    patient = {"gender": "male", "active": True, "id": "1", "resourceType": "Patient"}
    root = etree.fromstring(resource_to_xml(patient))
    assert [etree.QName(child).localname for child in root] == ["id", "active", "gender"]


def test_element_id_and_extension_url_are_attributes() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"id": "n1", "extension": [{"url": "urn:e", "valueBoolean": True}]}],
    }
    name = etree.fromstring(resource_to_xml(patient))[0]
    assert name.get("id") == "n1"
    extension = name[0]
    assert extension.get("url") == "urn:e"
    assert extension[0].tag == f"{{{F}}}valueBoolean" and extension[0].get("value") == "true"


def test_primitive_extension_and_id_go_on_the_element() -> None:
    patient = {
        "resourceType": "Patient",
        "gender": "other",
        "_gender": {"id": "g", "extension": [{"url": "urn:detail", "valueString": "x"}]},
    }
    gender = etree.fromstring(resource_to_xml(patient))[0]
    assert (gender.get("id"), gender.get("value")) == ("g", "other")
    assert gender[0].get("url") == "urn:detail"
    assert _round_trip(patient) == patient


def test_repeating_primitive_with_nulls_round_trips() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [
            {
                "given": ["A", None, "C"],
                "_given": [None, {"extension": [{"url": "urn:x", "valueCode": "b"}]}, None],
            }
        ],
    }
    given = etree.fromstring(resource_to_xml(patient))[0]
    assert [g.get("value") for g in given] == ["A", None, "C"]
    assert _round_trip(patient) == patient


def test_repeating_primitive_with_only_extensions_has_no_value_array() -> None:
    patient = {
        "resourceType": "Patient",
        "name": [{"_given": [{"extension": [{"url": "urn:x", "valueCode": "b"}]}]}],
    }
    assert _round_trip(patient) == patient


def test_contained_and_bundle_resources_are_wrapped_in_their_type_element() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Patient",
                    "contained": [{"resourceType": "Group", "type": "person", "actual": True}],
                }
            }
        ],
    }
    root = etree.fromstring(resource_to_xml(bundle))
    resource = root.find(f"{{{F}}}entry/{{{F}}}resource")
    assert resource is not None and resource[0].tag == f"{{{F}}}Patient"
    assert resource[0][0][0].tag == f"{{{F}}}Group"
    assert _round_trip(bundle) == bundle


def test_parameters_resource_parameter_is_wrapped() -> None:
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "r", "resource": {"resourceType": "Patient", "id": "p"}},
            {
                "name": "n",
                "valueInteger": -3,
                "part": [{"name": "d", "valueDecimal": Decimal("1.10")}],
            },
        ],
    }
    assert _comparable(_round_trip(parameters)) == _comparable(parameters)


def test_narrative_div_is_xhtml_and_embedded_verbatim() -> None:
    div = f"<div xmlns=\"{XHTML}\"><p title='t'>Dr. &quot;Q&quot; &amp; co<br /></p></div>"
    patient = {"resourceType": "Patient", "text": {"status": "generated", "div": div}}
    xml = resource_to_xml(patient)
    assert div.encode() in xml
    element = etree.fromstring(xml).find(f"{{{F}}}text/{{{XHTML}}}div")
    assert element is not None and element.findtext(f"{{{XHTML}}}p") == 'Dr. "Q" & co'


def test_div_whitespace_survives_pretty_printing() -> None:
    div = f'<div xmlns="{XHTML}"><b>a</b> <i>b</i>\n<p>c</p></div>'
    patient = {"resourceType": "Patient", "text": {"status": "generated", "div": div}}
    assert _round_trip(patient, pretty=True) == patient


def test_div_keeps_only_the_xhtml_namespace_declaration() -> None:
    xml = _patient_xml(
        '<text xmlns:h="http://www.w3.org/1999/xhtml" xmlns:o="urn:other">'
        '<status value="generated"/><h:div><h:p>x</h:p></h:div></text>'
    )
    assert xml_to_resource(xml)["text"]["div"] == f'<div xmlns="{XHTML}"><p>x</p></div>'


def test_decimals_keep_their_written_precision() -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueQuantity": {"value": Decimal("0.0500")},
        "referenceRange": [{"low": {"value": Decimal("1E-7")}, "high": {"value": 10}}],
    }
    xml = resource_to_xml(observation)
    assert b'value="0.0500"' in xml and b'value="0.0000001"' in xml
    back = _round_trip(observation)
    assert str(back["valueQuantity"]["value"]) == "0.0500"
    assert _comparable(back) == _comparable(observation)


def test_xml_values_become_json_types() -> None:
    got = xml_to_resource(_patient_xml('<active value="true"/><multipleBirthInteger value="3"/>'))
    assert got["active"] is True and type(got["multipleBirthInteger"]) is int
    timing = xml_to_resource(
        f'<MedicationRequest xmlns="{F}"><status value="active"/><intent value="order"/>'
        '<medicationCodeableConcept><text value="m"/></medicationCodeableConcept>'
        '<subject><reference value="Patient/1"/></subject>'
        '<dosageInstruction><timing><repeat><count value="2"/><period value="1.50"/>'
        "</repeat></timing></dosageInstruction></MedicationRequest>".encode()
    )
    repeat = timing["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat == {"count": 2, "period": Decimal("1.50")}
    assert type(repeat["count"]) is int and str(repeat["period"]) == "1.50"


def test_attribute_values_keep_newlines_and_special_characters() -> None:
    text = 'line 1\n\tline 2 "quoted" <b> & \r done'
    patient = {"resourceType": "Patient", "name": [{"text": text}]}
    assert _round_trip(patient) == patient


def test_pretty_output_is_indented_and_equivalent() -> None:
    patient = {"resourceType": "Patient", "id": "p", "name": [{"family": "F"}]}
    xml = resource_to_xml(patient, pretty=True).decode()
    assert '\n  <name>\n    <family value="F"/>\n  </name>' in xml
    assert xml_to_resource(xml.encode()) == patient


def test_comments_and_foreign_attributes_are_ignored() -> None:
    xml = _patient_xml(
        '<!-- c --><gender xmlns:x="urn:x" x:note="n" value="male"><!-- c --></gender>'
    )
    assert xml_to_resource(xml) == {"resourceType": "Patient", "gender": "male"}


def test_str_input_is_accepted() -> None:
    assert xml_to_resource(f'<Patient xmlns="{F}"><id value="a"/></Patient>')["id"] == "a"


# ----------------------------------------------------------------- hostile input


def test_external_entity_is_rejected() -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>'
    )
    assert "DOCTYPE" in _error(xxe).message


def test_doctype_is_rejected() -> None:
    doc = b'<!DOCTYPE Patient SYSTEM "http://example.org/p.dtd"><Patient xmlns="http://hl7.org/fhir"/>'
    assert "DOCTYPE" in _error(doc).message


def _billion_laughs() -> str:
    """Ten levels of ten-fold entity references: 10**9 "lol"s if expanded."""
    entities = ['<!ENTITY l0 "lol">']
    entities += [f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10)]
    return f'<!DOCTYPE p [{"".join(entities)}]><Patient xmlns="{F}"><id value="&l9;"/></Patient>'


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_billion_laughs_is_rejected_quickly(encoding: str) -> None:
    """UTF-16 hides the DOCTYPE from the byte scan: libxml2's own limits must hold."""
    doc = _billion_laughs()
    if encoding == "utf-16":
        doc = '<?xml version="1.0" encoding="UTF-16"?>' + doc
    _error(doc.encode(encoding))  # a parser without limits would not come back at all


def test_doctype_in_utf16_document_is_rejected() -> None:
    doc = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE p [<!ENTITY x "y">]>'
        f'<Patient xmlns="{F}"><id value="&x;"/></Patient>'
    )
    assert "DOCTYPE" in _error(doc.encode("utf-16")).message


def test_doctype_inside_narrative_is_rejected_when_serialising() -> None:
    div = f'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><div xmlns="{XHTML}">&x;</div>'
    patient = {"resourceType": "Patient", "text": {"status": "generated", "div": div}}
    with pytest.raises(XmlFormatError) as info:
        resource_to_xml(patient)
    assert info.value.expression == "Patient.text.div"


def test_malformed_xml_is_rejected() -> None:
    assert "not well-formed" in _error(b'<Patient xmlns="http://hl7.org/fhir"><id>').message


# ------------------------------------------------------------------ format errors


def test_unknown_element_is_rejected_with_its_path() -> None:
    error = _error(_patient_xml('<gender value="male"/><colour value="blue"/>'))
    assert error.expression == "Patient.colour"
    assert "Unknown element 'colour'" in error.message


def test_unknown_nested_element_path_includes_the_index() -> None:
    error = _error(_patient_xml('<name><family value="a"/></name><name><nick value="b"/></name>'))
    assert error.expression == "Patient.name[1].nick"


def test_element_in_wrong_namespace_is_rejected() -> None:
    error = _error(_patient_xml('<gender xmlns="urn:other" value="male"/>'))
    assert error.expression == "Patient.gender"
    assert "namespace" in error.message


def test_root_without_fhir_namespace_is_rejected() -> None:
    error = _error(b'<Patient><gender value="male"/></Patient>')
    assert error.expression == "Patient" and "namespace" in error.message


def test_unknown_root_resource_type_is_rejected() -> None:
    error = _error(f'<HumanName xmlns="{F}"/>'.encode())
    assert error.expression == "HumanName"
    assert "Unknown resource type" in error.message


def test_invalid_integer_value_is_rejected() -> None:
    error = _error(_patient_xml('<multipleBirthInteger value="abc"/>'))
    assert error.expression == "Patient.multipleBirthInteger"
    assert "integer" in error.message and "abc" in error.message


def test_integer_out_of_32_bit_range_is_rejected() -> None:
    assert (
        "32-bit range" in _error(_patient_xml('<multipleBirthInteger value="2147483648"/>')).message
    )


@pytest.mark.parametrize(
    ("body", "expression"),
    [
        ('<active value="yes"/>', "Patient.active"),
        ('<birthDate value="25-12-1974"/>', "Patient.birthDate"),
        ('<gender value=" male"/>', "Patient.gender"),
        ('<gender value=""/>', "Patient.gender"),
        (
            '<name><given value="a"/><given value="b"/><period><start value="x"/></period></name>',
            "Patient.name[0].period.start",
        ),
    ],
)
def test_invalid_primitive_values_are_rejected(body: str, expression: str) -> None:
    assert _error(_patient_xml(body)).expression == expression


def test_out_of_order_element_is_rejected() -> None:
    error = _error(_patient_xml('<gender value="male"/><active value="true"/>'))
    assert error.expression == "Patient.active"
    assert "out of order" in error.message


def test_repeated_single_element_is_rejected() -> None:
    error = _error(_patient_xml('<gender value="male"/><gender value="female"/>'))
    assert "must not repeat" in error.message


def test_two_variants_of_a_choice_are_rejected() -> None:
    error = _error(_patient_xml('<deceasedBoolean value="true"/><deceasedDateTime value="2020"/>'))
    assert "Only one of" in error.message


def test_element_id_as_child_element_is_rejected() -> None:
    error = _error(_patient_xml('<name><id value="n"/></name>'))
    assert error.expression == "Patient.name[0].id"
    assert "attribute" in error.message


def test_unknown_attribute_is_rejected() -> None:
    assert "Unknown attribute" in _error(_patient_xml('<gender value="male" lang="en"/>')).message


def test_text_content_in_fhir_element_is_rejected() -> None:
    error = _error(_patient_xml("<gender>male</gender>"))
    assert error.expression == "Patient.gender" and "text content" in error.message


def test_primitive_without_value_or_extension_is_rejected() -> None:
    assert "no value" in _error(_patient_xml("<gender/>")).message


def test_contained_must_hold_exactly_one_resource() -> None:
    error = _error(_patient_xml("<contained/>"))
    assert error.expression == "Patient.contained[0]"


def test_narrative_div_outside_xhtml_namespace_is_rejected() -> None:
    error = _error(_patient_xml('<text><status value="generated"/><div>x</div></text>'))
    assert error.expression == "Patient.text.div"
    assert XHTML in error.message


def test_error_is_a_value_error_with_message_and_expression() -> None:
    error = XmlFormatError("bad", "Patient.x")
    assert isinstance(error, ValueError)
    assert (error.message, error.expression) == ("bad", "Patient.x")


# ------------------------------------------------------- dicts that are not FHIR JSON


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        ({"resourceType": "Patient", "colour": "blue"}, "Patient.colour"),
        ({"resourceType": "Patient", "active": "yes"}, "Patient.active"),
        ({"resourceType": "Patient", "gender": ["male"]}, "Patient.gender"),
        ({"resourceType": "Patient", "name": {"family": "x"}}, "Patient.name"),
        ({"resourceType": "Patient", "name": [{"text": "a\x00b"}]}, "Patient.name[0].text"),
        ({"resourceType": "Patient", "_contact": {}}, "Patient._contact"),
        (
            {"resourceType": "Patient", "deceasedBoolean": True, "deceasedDateTime": "2020"},
            "Patient.deceasedDateTime",
        ),
        ({"resourceType": "Nope"}, "Nope"),
        ({"resourceType": "Patient", "name": [{"_id": {"extension": []}}]}, "Patient.name[0]._id"),
        ({"resourceType": "Patient", "text": {"div": "<div>\ud800</div>"}}, "Patient.text.div"),
        (
            {"resourceType": "Patient", "text": {"status": "generated", "div": "<p>x</p>"}},
            "Patient.text.div",
        ),
    ],
)
def test_serialising_invalid_json_form_raises_with_path(
    resource: dict[str, Any], expression: str
) -> None:
    with pytest.raises(XmlFormatError) as info:
        resource_to_xml(resource)
    assert info.value.expression == expression

"""ORM^O01 / OML^O21: one ServiceRequest per order (ORC with its OBR), results link to it."""

from __future__ import annotations

from adapters.hl7v2.convert import convert
from tests.adapters.hl7v2 import message, one, reference, resources, sample


def test_a_new_order_is_an_active_service_request_with_its_requester() -> None:
    bundle = convert(sample("ORM_OML/v2fhirig__ORM_O01.hl7")).bundle
    order = one(bundle, "ServiceRequest")
    assert (order["status"], order["intent"]) == ("active", "order")  # ORC-1 NW
    assert order["code"]["coding"][0]["code"] == "51523-9"
    assert order["requester"]["reference"].startswith("Practitioner/")
    assert order["subject"] == {"reference": reference(one(bundle, "Patient"))}
    assert order["note"] == [{"text": "Bluegrass is in bloom at the moment"}]


def test_every_order_group_is_its_own_service_request() -> None:
    bundle = convert(sample("ORM_OML/hl7apy__oml_o33_v25.hl7")).bundle
    orders = resources(bundle, "ServiceRequest")
    assert len(orders) == len({o["id"] for o in orders}) > 1


def test_an_obr_without_orc_still_makes_its_order() -> None:
    bundle = convert(sample("ORM_OML/msfc__MDHHS-OML-O21-1.hl7")).bundle
    order = one(bundle, "ServiceRequest")
    assert order["code"]["coding"][0]["code"] == "6532-6"


def test_results_for_an_order_update_the_service_request_the_order_made() -> None:
    """Same placer number with the same authority: the same ServiceRequest."""
    head = "MSH|^~\\&|{app}|KLINIKUM|IVZ|ZM|20240312093000||{kind}|{kind}1|P|2.5"
    pid = "PID|1||4711^^^KLINIKUM^MR||Mustermann^Max"
    order = "ORC|{control}|P-1^KIS||||||||20240312090000"
    obr = "OBR|1|P-1^KIS|F-9^LIS|24331-1^Lipid panel^LN"
    placed = convert(
        message(head.format(app="KIS", kind="ORM^O01"), pid, order.format(control="NW"), obr)
    ).bundle
    reported = convert(
        message(
            head.format(app="LIS", kind="ORU^R01"),
            pid,
            order.format(control="RE"),
            obr,
            "OBX|1|NM|2093-3^Cholesterol^LN||187|mg/dL|||||F",
        )
    ).bundle
    assert one(placed, "ServiceRequest")["id"] == one(reported, "ServiceRequest")["id"]


def test_diagnoses_of_an_order_are_conditions_of_the_patient() -> None:
    bundle = convert(sample("ORM_OML/msfc__ORM-O01-01.hl7")).bundle
    patient = one(bundle, "Patient")
    conditions = resources(bundle, "Condition")
    assert conditions
    assert all(c["subject"] == {"reference": reference(patient)} for c in conditions)

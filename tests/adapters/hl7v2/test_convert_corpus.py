"""The whole sample corpus: what is supported converts to valid R4 and commits as a
transaction; what is not is rejected (AR) with a reason; malformed files raise V2Error."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.hl7v2.convert import convert
from adapters.hl7v2.parse import split_messages
from adapters.hl7v2.types import V2Error
from fhir_server.service.resources import ResourceService
from fhir_server.service.validation import validate_resource
from tests.adapters.hl7v2 import SAMPLES, commit, new_service

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="the shared sample corpus is absent")

#: Files whose message type, event or version we do not convert, with the reason given.
UNSUPPORTED = {
    "ADT/medplum__adt_msh9_one_component_v21.hl7": "ADT^(no trigger event) is not supported",
    "ADT/mirth__filereader_07_ADT_A40.hl7": "ADT^A40 is not supported",
    "ADT/msfc__ADT-A40-01.hl7": "ADT^A40 is not supported",
    "other/gcphdh__rde_o01_ex1.hl7": "message type RDE is not supported",
    "other/hapi__segmentfinder_a24_nonstandard_delims.hl7": "ADT^A24 is not supported",
    "other/hl7apy__rsp_k21_v25.hl7": "message type RSP is not supported",
    "other/hl7apy__rsp_k21_v27_truncation.hl7": "message type RSP is not supported",
    "other/medplum__ack_nonstandard_field_sep.hl7": "message type ACK is not supported",
    "other/msfc__MDM-T02-03.hl7": "message type MDM is not supported",
    "other/msfc__OUL-R22-01.hl7": "message type OUL is not supported",
    "other/msfc__PC1-Problem-Add-v2.3.1.hl7": "message type PPR is not supported",
    "other/msfc__SIU_12.hl7": "ADT^A60 is not supported",
    "other/msfc__VXU-V04-01.hl7": "message type VXU is not supported",
    "other/msfc__VXU.hl7": "message type VXU is not supported",
    "other/v2fhirig__MDM_T02.hl7": "message type MDM is not supported",
    "other/v2fhirig__Message.hl7_MDM_T02.hl7": "message type MDM is not supported",
    "other/v2fhirig__VXU_V04.hl7": "message type VXU is not supported",
}
#: Supported messages that lack what a conversion needs: AE, located.
DATA_ERRORS = {
    "ORM_OML/hapi__example_oml_o21_msg11.hl7": ("MSH", 7, "recorded is required but empty"),
    "other/pyhl7__rep_sample_hl7.hl7": ("OBR", None, "ORU^R01 needs a OBR segment"),
}


def _corpus() -> list[str]:
    if not SAMPLES.is_dir():
        return []
    return sorted(
        str(p.relative_to(SAMPLES))
        for p in SAMPLES.glob("*/*.hl7")
        if p.parent.name not in ("malformed", "outbound")
    )


SUPPORTED = [name for name in _corpus() if name not in UNSUPPORTED and name not in DATA_ERRORS]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> ResourceService:
    return new_service(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("name", SUPPORTED)
def test_a_supported_file_converts_to_valid_resources_that_commit(
    name: str, service: ResourceService
) -> None:
    for raw in split_messages((SAMPLES / name).read_bytes()):
        bundle = convert(raw).bundle
        assert bundle["type"] == "transaction" and bundle["entry"]
        for entry in bundle["entry"]:
            validate_resource(entry["resource"])
            resource = entry["resource"]
            assert entry["request"] == {
                "method": "PUT",
                "url": f"{resource['resourceType']}/{resource['id']}",
            }
        commit(service, bundle)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_an_unsupported_file_is_rejected_with_the_reason(name: str) -> None:
    with pytest.raises(V2Error) as caught:
        convert((SAMPLES / name).read_bytes())
    assert caught.value.reject
    assert caught.value.code in ("200", "201", "203")
    assert UNSUPPORTED[name] in caught.value.message


@pytest.mark.parametrize("name", sorted(DATA_ERRORS))
def test_a_message_missing_what_it_needs_is_an_application_error(name: str) -> None:
    segment, field, reason = DATA_ERRORS[name]
    with pytest.raises(V2Error) as caught:
        convert((SAMPLES / name).read_bytes())
    assert not caught.value.reject
    assert (caught.value.segment, caught.value.field_position) == (segment, field)
    assert reason in caught.value.message


@pytest.mark.parametrize(
    "path", sorted((SAMPLES / "malformed").glob("*.hl7")), ids=lambda p: p.name
)
def test_a_malformed_file_raises_v2error_quickly(path: Path) -> None:
    with pytest.raises(V2Error) as caught:
        for raw in split_messages(path.read_bytes()):
            convert(raw)
    assert caught.value.message


def test_every_corpus_file_is_accounted_for() -> None:
    assert len(SUPPORTED) > 90
    assert set(UNSUPPORTED) | set(DATA_ERRORS) <= set(_corpus())

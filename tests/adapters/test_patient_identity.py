"""One Patient per person across the insurer and HL7 v2 adapters, on SQLite and PostgreSQL.

Before: the insurer's Patient had id uuid5(KVNR), a clinic's message made its own (hash of
MSH-4 and the PID-3 MRN) with the same KVNR, and the insurer's next row for that KVNR was
refused ("2 Patient resources already carry this identifier"). Now both adapters match by
identifier in the writing unit and create under one id derived from the KVNR.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from adapters import identity
from adapters.hl7v2.ack import AckReply, build_ack, encode_ack, read_ack
from adapters.hl7v2.inbox import IntakeSettings, Outcome
from adapters.hl7v2.listener import Intake
from adapters.hl7v2.parse import read_header
from adapters.insurer import writer
from adapters.insurer.ingest import ingest
from fhir_server.fhir import jsonio
from fhir_server.fhir.ids import patient_id
from fhir_server.service.resources import ResourceService
from fhir_server.storage.database import Database
from tests.adapters.hl7v2 import sample as v2_sample
from tests.adapters.insurer.helpers import Fresh, find, new_kvnr, read
from tests.adapters.insurer.helpers import sample as insurer_sample

KVNR = "http://fhir.de/sid/gkv/kvid-10"
KVNR_OID = "1.2.276.0.76.4.8"
CLINIC_OID = "1.2.276.0.76.3.1.99"
MRN_SYSTEM = f"urn:oid:{CLINIC_OID}"
#: Row 1 of tests/adapters/insurer/samples/tk.csv: Anna Maria Müller, born 12.08.1964.
ROW1_KVNR = "A123456780"
ROW1_BORN = "19640812"


@pytest.fixture()
def service(db: Database) -> ResourceService:
    return ResourceService(db)


@pytest.fixture()
def intake(service: ResourceService) -> Iterator[Intake]:
    current = Intake(service, IntakeSettings(lease_seconds=30.0, wait_seconds=20.0))
    yield current
    current.close()


# --- messages: real samples, PID adapted -----------------------------------------------------


def _pid(mrn: str | None, kvnr: str | None, born: str, name: str = "Müller^Anna") -> str:
    ids = []
    if mrn:
        ids.append(f"{mrn}^^^KLINIK&{CLINIC_OID}&ISO^MR")
    if kvnr:
        ids.append(f"{kvnr}^^^&{KVNR_OID}&ISO^KVZ10")
    return (
        f"PID|1||{'~'.join(ids)}||{name}||{born}|F|||Hauptstr. 1^^Hamburg^^20095^DEU^H||"
        "040 777777^PRN^PH~anna@klinik.example^NET^Internet|040 888888^WPN^PH"
    )


def _with_pid(raw: bytes, pid: str, control_id: str) -> bytes:
    """A sample with its PID replaced, its MSH-10 set and CR separators (as on the wire)."""
    lines = raw.decode("utf-8").lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    out = []
    for line in (x for x in lines.split("\n") if x.strip()):
        if line.startswith("PID|"):
            line = pid
        elif line.startswith("MSH|"):
            fields = line.split("|")
            fields[9] = control_id
            line = "|".join(fields)
        out.append(line)
    return ("\r".join(out) + "\r").encode("utf-8")


def adt(pid: str, control_id: str | None = None) -> bytes:
    """Mirth's ADT^A01 test message (v2.3) for the patient in ``pid``."""
    raw = v2_sample("ADT/mirth__filereader_04_ADT_A01.hl7")
    return _with_pid(raw, pid, control_id or uuid.uuid4().hex[:20])


def a08(pid: str, control_id: str | None = None) -> bytes:
    raw = v2_sample("ADT/mirth__filereader_06_ADT_A08.hl7")
    return _with_pid(raw, pid, control_id or uuid.uuid4().hex[:20])


def oru(pid: str, control_id: str | None = None) -> bytes:
    """Mirth's ORU^R01 CBC (v2.3) for the patient in ``pid``."""
    raw = v2_sample("ORU/mirth__filereader_08_ORU_R01.hl7")
    return _with_pid(raw, pid, control_id or uuid.uuid4().hex[:20])


def send(intake: Intake, raw: bytes) -> tuple[Outcome, AckReply]:
    outcome = intake.ingest(raw)
    ack = read_ack(encode_ack(build_ack(read_header(raw), outcome.code, outcome.error), raw))
    return outcome, ack


def accepted(intake: Intake, raw: bytes) -> Outcome:
    outcome, ack = send(intake, raw)
    assert ack.code == "AA", ack.errors
    return outcome


# --- reading ----------------------------------------------------------------------------------

#: What ``_pid`` sends besides identifiers and name: the clinic's address and telecoms.
CLINIC_ADDRESS = {
    "line": ["Hauptstr. 1"],
    "city": "Hamburg",
    "postalCode": "20095",
    "country": "DEU",
    "use": "home",
}
CLINIC_TELECOM = {
    ("phone", "040 777777", "home"),
    ("email", "anna@klinik.example", "home"),
    ("phone", "040 888888", "work"),
}


def _insurers(entry: dict[str, Any]) -> bool:
    return identity.insurer_owns("address", entry)


def _plain(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "extension"}


def _telecom(entry: dict[str, Any]) -> tuple[str, str, str | None]:
    return (entry["system"], entry["value"], entry.get("use"))


def patients(service: ResourceService, kvnr: str) -> list[dict[str, Any]]:
    return find(service, "Patient", f"identifier={KVNR}|{kvnr}")


def only_patient(service: ResourceService, kvnr: str) -> dict[str, Any]:
    found = patients(service, kvnr)
    assert len(found) == 1, [p["id"] for p in found]
    return found[0]


def keys(patient: dict[str, Any]) -> set[tuple[str, str]]:
    return set(identity.shared_keys(patient))


def subjects(service: ResourceService, outcome: Outcome) -> set[str]:
    """The Patient references of everything the message wrote."""
    refs = set()
    for ref in outcome.references:
        rtype, rid = ref.split("/")[:2]
        if rtype in ("Encounter", "Observation", "DiagnosticReport", "ServiceRequest"):
            resource = read(service, f"{rtype}/{rid}")
            refs.add(resource["subject"]["reference"])
    return refs


def insurer_file(fresh: Fresh) -> bytes:
    return fresh(insurer_sample("tk.csv"))


def imported(service: ResourceService) -> tuple[bytes, str]:
    """A fresh tk.csv imported: the file and row 1's KVNR."""
    fresh = Fresh()
    data = insurer_file(fresh)
    assert ingest(service, data, "tk").imported == 4
    return data, fresh.kvnrs[ROW1_KVNR]


def corrected(data: bytes) -> bytes:
    """Row 1 with a new phone number and a new postal code (an insurer correction)."""
    return data.replace(b"20095;Hamburg;040 30601234", b"22085;Hamburg;040 30609999")


# --- insurer first, then the clinic ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["adt", "oru"])
def test_insurer_then_clinic_message_is_one_patient_and_the_correction_is_accepted(
    service: ResourceService, intake: Intake, kind: str
) -> None:
    data, kvnr = imported(service)
    before = only_patient(service, kvnr)
    assert before["id"] == patient_id(kvnr)
    mrn = f"MR-{uuid.uuid4().hex[:8]}"
    build = adt if kind == "adt" else oru
    outcome = accepted(intake, build(_pid(mrn, kvnr, ROW1_BORN, "Mueller^Anna")))

    patient = only_patient(service, kvnr)
    assert patient["id"] == before["id"]
    assert {(KVNR, kvnr), (MRN_SYSTEM, mrn)} <= keys(patient)
    # the insurer's official name, address and telecoms stay first; the clinic's are added
    assert patient["name"][: len(before["name"])] == before["name"]
    assert {"family": "Mueller", "given": ["Anna"]} in patient["name"]
    assert patient["address"][: len(before["address"])] == before["address"]
    assert CLINIC_ADDRESS in [_plain(a) for a in patient["address"]]
    assert patient["telecom"][: len(before["telecom"])] == before["telecom"]
    assert {_telecom(t) for t in patient["telecom"]} >= CLINIC_TELECOM
    assert subjects(service, outcome) == {f"Patient/{before['id']}"}

    report = ingest(service, corrected(data), "tk")
    assert (report.updated, report.rejected, report.errors) == (1, 0, [])
    after = only_patient(service, kvnr)
    assert after["id"] == before["id"]
    assert {(KVNR, kvnr), (MRN_SYSTEM, mrn)} <= keys(after)  # the clinic's MRN stays
    assert {_telecom(t) for t in after["telecom"]} >= CLINIC_TELECOM
    assert CLINIC_ADDRESS in [_plain(a) for a in after["address"]]
    # the insurer's own address and home phone are replaced, not added to
    assert [a["postalCode"] for a in after["address"] if _insurers(a)] == ["22085"]
    assert [t["value"] for t in after["telecom"] if _insurers(t) and t["system"] == "phone"] == [
        "040 30609999"
    ]


def test_the_cause_an_own_patient_per_source_makes_the_insurer_refuse_its_next_row(
    service: ResourceService,
) -> None:
    """What happened before: a second Patient with the KVNR, made beside the insurer's."""
    fresh = Fresh()
    data = insurer_file(fresh)
    ingest(service, data, "tk")
    kvnr = fresh.kvnrs[ROW1_KVNR]
    service.create(
        "Patient", {"resourceType": "Patient", "identifier": [{"system": KVNR, "value": kvnr}]}
    )
    report = ingest(service, corrected(data), "tk")
    (error,) = report.errors
    assert error.reason.startswith("2 Patient resources already carry this identifier")


# --- the clinic first, then the insurer --------------------------------------------------------


def test_clinic_first_then_insurer_is_one_patient_with_both_identifiers(
    service: ResourceService, intake: Intake
) -> None:
    fresh = Fresh()
    kvnr = new_kvnr()
    fresh.kvnrs[ROW1_KVNR] = kvnr
    mrn = f"MR-{uuid.uuid4().hex[:8]}"
    outcome = accepted(intake, adt(_pid(mrn, kvnr, ROW1_BORN, "Mueller^Anna")))
    first = only_patient(service, kvnr)
    assert first["id"] == patient_id(kvnr)  # the id the insurer would have given it
    assert subjects(service, outcome) == {f"Patient/{first['id']}"}

    report = ingest(service, insurer_file(fresh), "tk")
    assert (report.imported, report.rejected) == (4, 0), report.errors
    patient = only_patient(service, kvnr)
    assert patient["id"] == first["id"]
    assert {(KVNR, kvnr), (MRN_SYSTEM, mrn)} <= keys(patient)
    assert patient["name"][0]["family"] == "Müller"  # the insurer's official name wins
    referral = find(service, "ServiceRequest", f"subject=Patient/{first['id']}&intent=order")
    assert len(referral) == 1

    # the clinic's next message neither duplicates nor overwrites the insurer's data
    accepted(intake, a08(_pid(mrn, kvnr, ROW1_BORN, "Mueller^Anna")))
    again = only_patient(service, kvnr)
    assert (
        again["name"] == patient["name"]
        and again["meta"]["versionId"] == patient["meta"]["versionId"]
    )


def test_mrn_only_then_mrn_with_kvnr_adds_the_kvnr_to_that_patient(
    service: ResourceService, intake: Intake
) -> None:
    mrn = f"MR-{uuid.uuid4().hex[:8]}"
    kvnr = new_kvnr()
    first = accepted(intake, adt(_pid(mrn, None, "19700101")))
    (pid_ref,) = subjects(service, first)
    later = accepted(intake, oru(_pid(mrn, kvnr, "19700101")))
    patient = only_patient(service, kvnr)
    assert f"Patient/{patient['id']}" == pid_ref
    assert {(KVNR, kvnr), (MRN_SYSTEM, mrn)} <= keys(patient)
    assert subjects(service, later) == {pid_ref}
    # and the insurer then finds it by the KVNR (row 1's birth date differs: use a fresh row)
    assert find(service, "Patient", f"identifier={MRN_SYSTEM}|{mrn}")[0]["id"] == patient["id"]


# --- two persons are never merged ----------------------------------------------------------------


def test_same_kvnr_other_birth_date_is_refused_with_ae_on_pid_7(
    service: ResourceService, intake: Intake
) -> None:
    fresh = Fresh()
    ingest(service, insurer_file(fresh), "tk")
    kvnr = fresh.kvnrs[ROW1_KVNR]
    before = only_patient(service, kvnr)
    outcome, ack = send(intake, adt(_pid("MR-X", kvnr, "19650812")))
    assert ack.code == "AE" and ack.error_codes == ["205"]
    assert "birth date 1964-08-12" in ack.errors[0] and "not merged" in ack.errors[0]
    assert outcome.error is not None and (outcome.error.segment, outcome.error.field_position) == (
        "PID",
        7,
    )
    assert only_patient(service, kvnr)["meta"]["versionId"] == before["meta"]["versionId"]


def test_mrn_of_one_patient_and_kvnr_of_another_is_refused(
    service: ResourceService, intake: Intake
) -> None:
    mrn = f"MR-{uuid.uuid4().hex[:8]}"
    kvnr_a, kvnr_b = new_kvnr(), new_kvnr()
    accepted(intake, adt(_pid(mrn, kvnr_a, "19700101")))
    accepted(intake, adt(_pid(None, kvnr_b, "19700101")))
    outcome, ack = send(intake, adt(_pid(mrn, kvnr_b, "19700101")))
    assert ack.code == "AE" and ack.error_codes == ["205"]
    assert f"KVNR {kvnr_a}" in ack.errors[0]
    assert outcome.error is not None and outcome.error.field_position == 3
    assert len(patients(service, kvnr_a)) == 1 and len(patients(service, kvnr_b)) == 1
    assert kvnr_b not in {i["value"] for i in only_patient(service, kvnr_a)["identifier"]}


def test_identifiers_naming_two_stored_patients_are_refused(
    service: ResourceService, intake: Intake
) -> None:
    mrn = f"MR-{uuid.uuid4().hex[:8]}"
    kvnr = new_kvnr()
    accepted(intake, adt(_pid(mrn, None, "19700101")))  # the clinic's patient, no KVNR yet
    service.create(  # someone else recorded the KVNR on another Patient
        "Patient",
        {"resourceType": "Patient", "identifier": [{"system": KVNR, "value": kvnr}]},
    )
    _, ack = send(intake, adt(_pid(mrn, kvnr, "19700101")))
    assert ack.code == "AE" and "2 different stored Patients" in ack.errors[0]
    assert len(patients(service, kvnr)) == 1


def test_insurer_row_for_a_clinic_patient_with_another_birth_date_is_a_row_error(
    service: ResourceService, intake: Intake
) -> None:
    fresh = Fresh()
    kvnr = new_kvnr()
    fresh.kvnrs[ROW1_KVNR] = kvnr
    accepted(intake, adt(_pid("MR-Y", kvnr, "19700101")))
    report = ingest(service, insurer_file(fresh), "tk")
    assert (report.imported, report.rejected) == (3, 1)
    (error,) = report.errors
    assert (error.row, error.field, error.value) == (1, "Geburtsdatum", "1964-08-12")
    assert "birth date 1970-01-01" in error.reason and "not merged" in error.reason
    assert only_patient(service, kvnr)["birthDate"] == "1970-01-01"


def test_insurer_may_correct_the_birth_date_of_a_patient_it_referred(
    service: ResourceService,
) -> None:
    fresh = Fresh()
    data = insurer_file(fresh)
    ingest(service, data, "tk")
    report = ingest(service, data.replace(b";12.08.1964;", b";13.08.1964;"), "tk")
    assert (report.updated, report.rejected) == (1, 0)
    assert only_patient(service, fresh.kvnrs[ROW1_KVNR])["birthDate"] == "1964-08-13"


# --- idempotency and races ------------------------------------------------------------------------


def test_resend_and_same_content_again_store_no_new_version(
    service: ResourceService, intake: Intake
) -> None:
    fresh = Fresh()
    ingest(service, insurer_file(fresh), "tk")
    kvnr = fresh.kvnrs[ROW1_KVNR]
    pid = _pid("MR-R", kvnr, ROW1_BORN)
    raw = adt(pid, control_id=f"R-{uuid.uuid4().hex[:10]}")
    first = accepted(intake, raw)
    version = only_patient(service, kvnr)["meta"]["versionId"]
    assert send(intake, raw)[0].duplicate  # a resend: answered from the inbox
    again = accepted(intake, adt(pid))  # the same content under a new control id
    assert only_patient(service, kvnr)["meta"]["versionId"] == version
    assert [r for r in again.references if r.startswith("Patient/")] == [
        r for r in first.references if r.startswith("Patient/")
    ]


def test_concurrent_first_messages_for_one_kvnr_make_one_patient(
    service: ResourceService, intake: Intake, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    kvnr = new_kvnr()
    mrns = [f"MR-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    # every message has searched (and found nothing) before any writes: the race at its worst
    barrier = threading.Barrier(len(mrns), timeout=3)
    real = identity.candidates
    searches: list[int] = []

    def racing(*args: Any, **kwargs: Any) -> list[identity.Found]:
        found = real(*args, **kwargs)
        searches.append(len(found))
        # SQLite runs one writer at a time: nobody else gets here meanwhile (the wait breaks)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return found

    monkeypatch.setattr(identity, "candidates", racing)
    with ThreadPoolExecutor(len(mrns)) as pool:
        results = list(pool.map(lambda m: send(intake, adt(_pid(m, kvnr, "19700101"))), mrns))
    assert [ack.code for _, ack in results] == ["AA"] * len(mrns), [a.errors for _, a in results]
    patient = only_patient(service, kvnr)
    assert patient["id"] == patient_id(kvnr)
    assert {(MRN_SYSTEM, m) for m in mrns} <= keys(patient)
    if store == "postgres":  # all searched before anyone wrote; the losers were retried
        assert searches[: len(mrns)] == [0] * len(mrns) and len(searches) > len(mrns)


def test_bundle_references_point_at_the_matched_patient(
    service: ResourceService, intake: Intake
) -> None:
    fresh = Fresh()
    ingest(service, insurer_file(fresh), "tk")
    kvnr = fresh.kvnrs[ROW1_KVNR]
    outcome = accepted(intake, oru(_pid("MR-O", kvnr, ROW1_BORN)))
    target = f"Patient/{patient_id(kvnr)}"
    for ref in outcome.references:
        rtype, rid = ref.split("/")[:2]
        text = bytes(jsonio.dumps(read(service, f"{rtype}/{rid}"))).decode()
        assert "Patient/" not in text.replace(target, ""), ref


def test_a_patient_stored_meanwhile_by_another_source_is_merged_not_overwritten(
    service: ResourceService, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clinic's Patient committed while an insurer unit runs (PostgreSQL: writers run at
    once): the unit fails or the row is redone, and the clinic's MRN survives."""
    if store != "postgres":
        pytest.skip("SQLite runs one writer at a time: nothing can be stored meanwhile")
    fresh = Fresh()
    data = insurer_file(fresh)
    rows = ["A123456780", "K234567894"]
    kvnrs = [fresh.kvnrs[k] for k in rows]
    real = writer._Chunk._resolve
    calls: list[int] = []

    def clinic_stores(kvnr: str) -> None:
        body = {
            "resourceType": "Patient",
            "id": patient_id(kvnr),
            "identifier": [
                {"system": MRN_SYSTEM, "value": f"MR-{kvnr}"},
                {"system": KVNR, "value": kvnr},
            ],
        }
        service.update("Patient", patient_id(kvnr), body)  # another connection, committed

    def resolve(chunk: Any, identities: Any) -> None:
        real(chunk, identities)
        calls.append(1)
        if len(calls) == 1:  # the chunk: its create of row 1's Patient fails
            clinic_stores(kvnrs[0])
        elif len(calls) == 3:  # row 2 alone: its Patient appears after the search
            clinic_stores(kvnrs[1])

    monkeypatch.setattr(writer._Chunk, "_resolve", resolve)
    report = ingest(service, data, "tk")
    assert (report.imported, report.rejected) == (4, 0), report.errors
    assert len(calls) == 1 + 4 + 1  # the chunk, each row alone, row 2 once more
    for kvnr in kvnrs:
        patient = only_patient(service, kvnr)
        assert {(KVNR, kvnr), (MRN_SYSTEM, f"MR-{kvnr}")} <= keys(patient)
        assert patient["name"][0]["use"] == "official"  # and the insurer's data is there


# --- merge policy: each source keeps its own, neither erases the other's -------------------------
# (docs/insurer-adapter.md, "Merge policy")


def ref(pid: str, control_id: str | None = None) -> bytes:
    """HAPI's REF^I12 (v2.5) for the patient in ``pid``."""
    raw = v2_sample("REF/hapi__ref_i12_v25.hl7")
    return _with_pid(raw, pid, control_id or uuid.uuid4().hex[:20])


CLINIC_MESSAGES = {"adt": adt, "ref": ref}


def _has_both_sources(patient: dict[str, Any], kvnr: str, mrn: str) -> None:
    """The insurer's data (row 1 of tk.csv) and the clinic's (``_pid``) on one Patient."""
    assert {(KVNR, kvnr), (MRN_SYSTEM, mrn)} <= keys(patient)
    # insurer-authoritative: official name, birth date, gender; listed first
    assert patient["name"][0] == {"use": "official", "family": "Müller", "given": ["Anna", "Maria"]}
    assert [n for n in patient["name"] if n.get("use") == "official"] == [patient["name"][0]]
    assert (patient["birthDate"], patient["gender"]) == ("1964-08-12", "female")
    insurer_address = [_plain(a) for a in patient["address"] if _insurers(a)]
    assert insurer_address == [
        {"use": "home", "type": "both", "city": "Hamburg", "postalCode": "20095", "country": "DE"}
    ]
    assert _insurers(patient["address"][0])
    # the clinic's contributions kept, once each
    assert CLINIC_ADDRESS in [_plain(a) for a in patient["address"]]
    assert len(patient["address"]) == 2
    telecoms = [_telecom(t) for t in patient["telecom"]]
    assert CLINIC_TELECOM | {
        ("phone", "040 30601234", "home"),
        ("email", "anna.mueller@example.de", "home"),
    } == set(telecoms)
    assert len(telecoms) == len(set(telecoms))
    assert {"family": "Mueller", "given": ["Anna"]} in patient["name"]


@pytest.mark.parametrize("kind", sorted(CLINIC_MESSAGES))
def test_clinic_address_and_mrn_survive_the_insurer_import_and_its_reimport(
    service: ResourceService, intake: Intake, kind: str
) -> None:
    fresh = Fresh()
    kvnr = new_kvnr()
    fresh.kvnrs[ROW1_KVNR] = kvnr
    mrn = f"MR-{uuid.uuid4().hex[:8]}"
    pid = _pid(mrn, kvnr, ROW1_BORN, "Mueller^Anna")
    raw = CLINIC_MESSAGES[kind](pid, control_id=f"C-{uuid.uuid4().hex[:10]}")
    accepted(intake, raw)

    data = insurer_file(fresh)
    report = ingest(service, data, "tk")
    assert (report.imported, report.rejected) == (4, 0), report.errors
    patient = only_patient(service, kvnr)
    assert patient["id"] == patient_id(kvnr)
    _has_both_sources(patient, kvnr, mrn)
    version = patient["meta"]["versionId"]

    # re-importing the same file changes nothing (digest skip) ...
    again = ingest(service, data, "tk")
    assert (again.unchanged, again.resources_created, again.resources_updated) == (4, 0, 0)
    # ... nor does a clinic resend, or the same content under a new control id
    assert send(intake, raw)[0].duplicate
    accepted(intake, CLINIC_MESSAGES[kind](pid))
    assert only_patient(service, kvnr)["meta"]["versionId"] == version


@pytest.mark.parametrize("kind", sorted(CLINIC_MESSAGES))
def test_insurer_data_survives_the_clinic_message_and_both_stay_on_reimport(
    service: ResourceService, intake: Intake, kind: str
) -> None:
    data, kvnr = imported(service)
    mrn = f"MR-{uuid.uuid4().hex[:8]}"
    pid = _pid(mrn, kvnr, ROW1_BORN, "Mueller^Anna")
    raw = CLINIC_MESSAGES[kind](pid, control_id=f"C-{uuid.uuid4().hex[:10]}")
    accepted(intake, raw)
    patient = only_patient(service, kvnr)
    _has_both_sources(patient, kvnr, mrn)
    version = patient["meta"]["versionId"]

    assert send(intake, raw)[0].duplicate  # a resend: answered from the inbox
    accepted(intake, CLINIC_MESSAGES[kind](pid))  # same content, new control id
    again = ingest(service, data, "tk")
    assert (again.unchanged, again.resources_created, again.resources_updated) == (4, 0, 0)
    assert only_patient(service, kvnr)["meta"]["versionId"] == version

    # a changed note defeats the digest skip: the row is compared, the Patient still equal
    noted = data.replace(b"Termin vormittags", b"Termin nachmittags")
    compared = ingest(service, noted, "tk")
    assert (compared.updated, compared.rejected) == (1, 0), compared.errors
    assert only_patient(service, kvnr)["meta"]["versionId"] == version


def test_merge_policy_is_idempotent_in_either_order() -> None:
    """The pure merge functions: folding the same source in again changes nothing, and the
    other source's entries survive either order."""
    row = {
        "resourceType": "Patient",
        "identifier": [{"system": KVNR, "value": "A123456780"}],
        "name": [{"use": "official", "family": "Müller", "given": ["Anna"]}],
        "gender": "female",
        "birthDate": "1964-08-12",
        "address": [identity.insurer_mark({"use": "home", "city": "Hamburg"})],
        "telecom": [identity.insurer_mark({"system": "phone", "value": "1", "use": "home"})],
    }
    clinic = {
        "resourceType": "Patient",
        "identifier": [
            {"system": MRN_SYSTEM, "value": "MR-1"},
            {"system": KVNR, "value": "A123456780"},
        ],
        "name": [
            {"use": "official", "family": "Mueller", "given": ["Anna"]},
            {"use": "maiden", "family": "Schmidt"},
            {"family": "Müller", "given": ["Anna"]},  # the insurer's name again: not added
        ],
        "gender": "female",
        "birthDate": "1964-08-12",
        "address": [CLINIC_ADDRESS],
        "telecom": [
            {"system": "phone", "value": "2", "use": "home"},
            {"system": "phone", "value": "1"},
        ],
    }
    insurer_first = identity.merge_from_clinic(identity.merge_from_insurer(None, row), clinic, True)
    clinic_first = identity.merge_from_insurer(
        identity.merge_from_clinic(clinic, clinic, False), row
    )
    for merged in (insurer_first, clinic_first):
        assert merged["name"] == [row["name"][0], {"use": "maiden", "family": "Schmidt"}]
        assert merged["address"] == [row["address"][0], CLINIC_ADDRESS]
        assert [t["value"] for t in merged["telecom"]] == ["1", "2"]
        assert set(identity.shared_keys(merged)) == {(KVNR, "A123456780"), (MRN_SYSTEM, "MR-1")}
        assert identity.merge_from_insurer(merged, row) == merged
        assert identity.merge_from_clinic(merged, clinic, True) == merged
    # a correction by the insurer replaces its own entries only
    moved = {**row, "address": [identity.insurer_mark({"use": "home", "city": "Kiel"})]}
    corrected = identity.merge_from_insurer(insurer_first, moved)
    assert corrected["address"] == [moved["address"][0], CLINIC_ADDRESS]

"""Running one export job: read in keyset pages, write NDJSON, record progress on the row.

Each page refreshes the job's heartbeat; a job whose row disappeared was cancelled (its files
are dropped), and a stopping server hands its job back as ``accepted`` to be run again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from fhir_server.access.policy import Access
from fhir_server.bulk.ndjson import NdjsonWriter, remove_dir
from fhir_server.bulk.select import Selector, pages, present_types
from fhir_server.bulk.spec import ExportSpec
from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError
from fhir_server.logging import get_logger
from fhir_server.service.clock import now
from fhir_server.service.resources import ResourceService
from fhir_server.storage import export_jobs
from fhir_server.storage.export_jobs import ACCEPTED, COMPLETED, FAILED

log = get_logger(__name__)


class Cancelled(Exception):
    """The job's row is gone: a client deleted it."""


class Interrupted(Exception):
    """The server is stopping; the job runs again on the next start."""


class ExportRunner:
    def __init__(
        self,
        service: ResourceService,
        root: Path,
        page_size: int = 500,
        max_lines: int = 100_000,
        patient_chunk: int = 100,
    ) -> None:
        self.service = service
        self.db = service.db
        self.root = root
        self.page_size = page_size
        self.max_lines = max_lines
        self.patient_chunk = patient_chunk
        self.stopping = threading.Event()
        self.selector = Selector(service.registry)

    def check(self, spec: ExportSpec) -> None:
        """Build every ``_typeFilter`` once at kick-off, so a bad one is a 400, not a failed job."""
        for rtype in spec.types:
            self.selector.type_filter(rtype, spec.filters_of(rtype))

    def run(self, job_id: str) -> None:
        """Run a claimed job from scratch (a restarted job rewrites its files)."""
        row = export_jobs.get(self.db, job_id)
        if row is None:
            return
        spec = ExportSpec.from_json(row.spec)
        directory = self.root / job_id
        remove_dir(directory)
        writer = NdjsonWriter(directory, self.max_lines)
        try:
            self._beat(job_id, "started", transaction_time=now())
            self._export(job_id, spec, writer)
        except Interrupted:
            writer.close()
            export_jobs.set_state(self.db, job_id, now(), status=ACCEPTED, progress="queued")
            return
        except Cancelled:
            writer.close()
            remove_dir(directory)
            return
        except FhirError as exc:
            writer.close()
            self._fail(job_id, exc.diagnostics)
            return
        except Exception:
            writer.close()
            log.exception("export failed", job=job_id)
            self._fail(job_id, "The export failed on an internal error; start a new export")
            return
        files = [asdict(f) for f in writer.close()]
        export_jobs.set_state(
            self.db, job_id, now(), status=COMPLETED, progress=None, output=json.dumps(files)
        )
        if export_jobs.get(self.db, job_id) is None:
            remove_dir(directory)  # cancelled while finishing

    def _fail(self, job_id: str, message: str) -> None:
        export_jobs.set_state(self.db, job_id, now(), status=FAILED, error=message)

    def _beat(self, job_id: str, progress: str, **values: object) -> None:
        if self.stopping.is_set():
            raise Interrupted
        if not export_jobs.set_state(self.db, job_id, now(), progress=progress[:255], **values):
            raise Cancelled

    def _export(self, job_id: str, spec: ExportSpec, writer: NdjsonWriter) -> None:
        with self.db.read() as conn:
            present = present_types(conn)
        types = [t for t in spec.types if t in present]
        since = spec.since_time
        filters = {t: self.selector.type_filter(t, spec.filters_of(t)) for t in types}
        client = spec.restricted_to
        if spec.level == "system":
            for number, rtype in enumerate(types, 1):
                conds = self.selector.conditions(rtype, since, filters[rtype], client)
                for rows in pages(self.db, conds, self.page_size):
                    for r in rows:
                        writer.write(rtype, r.content or b"")
                    self._beat(job_id, f"{rtype} (type {number} of {len(types)})")
            return
        seen: dict[str, set[int]] = {t: set() for t in types}
        done = 0
        for chunk in self._patients(spec):
            for rtype in types:
                conds = self.selector.conditions(rtype, since, filters[rtype], client)
                conds.append(self.selector.compartment(rtype, chunk))
                for rows in pages(self.db, conds, self.page_size):
                    for r in rows:
                        if r.res_pk not in seen[rtype]:  # in several patients' compartments
                            seen[rtype].add(r.res_pk)
                            writer.write(rtype, r.content or b"")
                    self._beat(job_id, f"{done} patients done, now {rtype}")
            done += len(chunk)
            self._beat(job_id, f"{done} patients done")

    def _patients(self, spec: ExportSpec) -> Iterator[list[str]]:
        """The patients whose compartments are exported, ``patient_chunk`` at a time."""
        if spec.level == "patient":
            conds = self.selector.conditions("Patient", None, None, spec.restricted_to)
            for rows in pages(self.db, conds, self.patient_chunk):
                yield [r.id for r in rows]
            return
        assert spec.group_id is not None
        members = group_members(self.service, spec.group_id, spec.restricted_to)
        for start in range(0, len(members), self.patient_chunk):
            yield members[start : start + self.patient_chunk]


def group_members(
    service: ResourceService, group_id: str, access: Access | None = None
) -> list[str]:
    """Ids of the Group's Patient members (404 when the Group does not exist or the client
    may not see it; members it may not see are left out by the export's conditions)."""
    stored = service.read("Group", group_id, access)
    group = jsonio.loads_trusted(stored.content or b"{}")
    ids: list[str] = []
    for member in group.get("member", []):
        ref = str(member.get("entity", {}).get("reference", ""))
        rtype, _, rid = ref.rstrip("/").split("/_history/")[0].rpartition("/")
        if rtype.rpartition("/")[2] == "Patient" and rid and rid not in ids:
            ids.append(rid)
    return ids

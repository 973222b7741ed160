"""Background threads that claim export jobs from the table and run them.

Jobs live in the database, not in memory: any server process may claim an accepted job, and a
job whose process died (its heartbeat lapsed for ``lease_seconds``) is claimed and restarted.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from fhir_server.bulk.runner import ExportRunner
from fhir_server.logging import get_logger
from fhir_server.service.clock import now
from fhir_server.storage import export_jobs

log = get_logger(__name__)


class ExportWorker:
    def __init__(
        self, runner: ExportRunner, threads: int = 2, lease_seconds: float = 60, poll: float = 2
    ) -> None:
        self.runner = runner
        self.lease = timedelta(seconds=lease_seconds)
        self.poll = poll
        self._wake = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"ivz-export-{n}", daemon=True)
            for n in range(max(0, threads))  # 0: this process only accepts jobs
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """A job was accepted: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        """Hand running jobs back (accepted) and wait for the threads to notice."""
        self.runner.stopping.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self.runner.stopping.is_set():
            try:
                moment = now()
                job_id = export_jobs.claim(self.runner.db, moment, moment - self.lease)
            except Exception:
                log.exception("claiming an export job failed")
                job_id = None
            if job_id is not None:
                self.runner.run(job_id)
                continue
            self._wake.wait(self.poll)
            self._wake.clear()

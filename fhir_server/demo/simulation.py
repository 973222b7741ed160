"""Weeks of the program replayed in order of time: insurer exports, visits, results, verdicts.

Every action waits in one time-ordered queue and runs with the simulated clock set to its
time, so each write sees the "now" it would have seen (booking windows, lastUpdated), and
later steps learn what earlier ones stored (the bridge's booking) by reading it back.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import time as time_module
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path

from adapters.insurer.ingest import IngestError, ingest
from fhir_server.demo.clinic import Clinic
from fhir_server.demo.clock import SimulatedClock
from fhir_server.demo.cohort import BERLIN, Case
from fhir_server.demo.decide import verdict_parameters
from fhir_server.demo.errors import DemoError
from fhir_server.demo.export import tk_csv
from fhir_server.demo.messages import Visit, oru, siu
from fhir_server.demo.store import Lookups
from fhir_server.fhir.outcomes import FhirError
from fhir_server.pathway.verdict import record_verdict
from fhir_server.service.resources import ResourceService

#: The clinic reports a no-show this long after the appointment's start.
NO_SHOW_AFTER = timedelta(minutes=30)
#: Results are sent this long after the visit ends.
RESULTS_AFTER = timedelta(minutes=90)
#: The insurer's referral feed runs every two hours (Berlin time) on the day of receipt.
EXPORT_HOURS = (10, 12, 14, 16, 18)
CONFERENCE = time(14, 0)

Action = Callable[[], None]
_KINDS = {
    "export": "insurer",
    "no_show": "clinic",
    "seen": "clinic",
    "results": "clinic",
    "decide": "verdict",
}


@dataclass
class Tally:
    """What the run did (for the summary line), not the report's figures."""

    exports: int = 0
    rows: int = 0
    rejected: int = 0
    on_hold: list[str] = field(default_factory=list)
    unbooked: list[str] = field(default_factory=list)
    no_shows: int = 0
    visits: int = 0
    verdicts: int = 0
    pending: list[str] = field(default_factory=list)
    acks: Counter[str] = field(default_factory=Counter)
    #: Wall-clock seconds per kind of step (insurer, clinic, verdict).
    seconds: dict[str, float] = field(default_factory=dict)


class Simulation:
    """One demo run on one service; ``run()`` until the queue is empty or past ``until``."""

    def __init__(
        self,
        service: ResourceService,
        clock: SimulatedClock,
        clinic: Clinic,
        until: datetime,
        out_dir: Path,
    ) -> None:
        self.service = service
        self.clock = clock
        self.clinic = clinic
        self.until = until
        self.out_dir = out_dir
        self.lookups = Lookups(service)
        self.tally = Tally()
        self._queue: list[tuple[datetime, int, str, Action]] = []
        self._order = itertools.count()
        self._messages: Counter[str] = Counter()
        self._no_showed: set[str] = set()

    def at(self, when: datetime, case: str, action: Action) -> None:
        """Do ``action`` at ``when``; ``case`` names the case it advances ("" for none)."""
        heapq.heappush(self._queue, (when, next(self._order), case, action))

    def run(self) -> Tally:
        while self._queue:
            when, _, case, action = heapq.heappop(self._queue)
            if when > self.until:
                if case:
                    self.tally.pending.append(case)
                continue
            self.clock.advance_to(when)
            started = time_module.perf_counter()
            action()
            name = getattr(action, "func", action).__name__.strip("_")
            kind = _KINDS.get(name, name)
            spent = time_module.perf_counter() - started
            self.tally.seconds[kind] = self.tally.seconds.get(kind, 0.0) + spent
        self.tally.acks = self.clinic.acks
        return self.tally

    # --- the insurer ----------------------------------------------------------------------

    def schedule_exports(self, cases: list[Case]) -> None:
        """One export file per feed run, with the referrals received since the last run."""
        runs: dict[datetime, list[Case]] = {}
        for case in cases:
            runs.setdefault(_feed_run(case.received), []).append(case)
        for when, batch in sorted(runs.items()):
            name = when.astimezone(BERLIN).strftime("%Y-%m-%d-%H%M")
            self.at(when, batch[0].number, functools.partial(self._export, name, batch))

    def _export(self, name: str, batch: list[Case]) -> None:
        path = self.out_dir / f"tk-export-{name}.csv"
        path.write_bytes(tk_csv(batch))
        try:
            report = ingest(self.service, path.read_bytes(), "tk")
        except IngestError as exc:
            raise DemoError(f"{path.name} refused: {exc}") from exc
        self.tally.exports += 1
        self.tally.rows += report.rows
        self.tally.rejected += report.rejected
        if report.rejected:
            first = report.errors[0]
            raise DemoError(f"{path.name}: row {first.row} {first.field}: {first.reason}")
        ids = self.lookups.referral_ids(c.number for c in batch)
        for case in batch:
            if case.consent != "ja":
                self.tally.on_hold.append(case.number)
                continue
            self._follow_booking(case, ids[case.number])

    # --- the team's clinic ----------------------------------------------------------------

    def _follow_booking(self, case: Case, referral_id: str) -> None:
        visit = self.lookups.booked_visit(referral_id)
        if visit is None:
            self.tally.unbooked.append(case.number)
            return
        if case.no_show and case.number not in self._no_showed:
            later = functools.partial(self._no_show, case, referral_id, visit)
            self.at(visit.start + NO_SHOW_AFTER, case.number, later)
        else:
            self.at(visit.end, case.number, functools.partial(self._seen, case, referral_id, visit))

    def _siu(self, case: Case, visit: Visit, event: str, status: str) -> None:
        self._messages[case.number] += 1
        seq = self._messages[case.number]
        self.clinic.send(siu(case, visit, event, status, self.clock(), seq))

    def _no_show(self, case: Case, referral_id: str, visit: Visit) -> None:
        """S26: the bridge frees nothing (the slot is past) and books the referral again."""
        self._no_showed.add(case.number)
        self.tally.no_shows += 1
        self._siu(case, visit, "S26", "Noshow")
        self._follow_booking(case, referral_id)

    def _seen(self, case: Case, referral_id: str, visit: Visit) -> None:
        self._siu(case, visit, "S14", "Complete")
        self.tally.visits += 1
        later = functools.partial(self._results, case, referral_id, visit)
        self.at(visit.end + RESULTS_AFTER, case.number, later)

    def _results(self, case: Case, referral_id: str, visit: Visit) -> None:
        self.clinic.send(oru(case, visit, self.clock()))
        later = functools.partial(self._decide, case, referral_id, visit)
        self.at(_conference(visit.end), case.number, later)

    # --- the team's decision --------------------------------------------------------------

    def _decide(self, case: Case, referral_id: str, visit: Visit) -> None:
        params = verdict_parameters(case, visit.team_service, self.clock())
        try:
            record_verdict(self.service, referral_id, params)
        except FhirError as exc:
            raise DemoError(f"{case.number}: $verdict refused: {exc.diagnostics}") from exc
        self.tally.verdicts += 1


def _feed_run(received: datetime) -> datetime:
    """The first run of the insurer's feed after a receipt (next morning after the last)."""
    local = received.astimezone(BERLIN)
    for hour in EXPORT_HOURS:
        run = datetime.combine(local.date(), time(hour), BERLIN)
        if run > local:
            return run
    return datetime.combine(local.date() + timedelta(days=1), time(EXPORT_HOURS[0]), BERLIN)


def _conference(after: datetime) -> datetime:
    """The team's case conference: the next working day at 14:00 (Berlin)."""
    day = after.astimezone(BERLIN).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, CONFERENCE, BERLIN)

"""``ivz demo``: seed the teams, replay a synthetic cohort through the real entry points, and
report what the store then holds.

The figures come from :func:`fhir_server.pathway.report.program_report` over the stored
resources, never from the generator, so the demo doubles as an end-to-end check.
A second run finds the cohort's first referral and only reports.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from adapters.hl7v2 import outbound as outbound_rules
from fhir_server.demo.clinic import Clinic
from fhir_server.demo.clock import SimulatedClock
from fhir_server.demo.cohort import CASE_PREFIX, generate
from fhir_server.demo.errors import DemoError
from fhir_server.demo.simulation import Simulation, Tally
from fhir_server.demo.store import Lookups
from fhir_server.pathway.report import Report, parse_period, program_report
from fhir_server.pathway.rules import pathway_hooks
from fhir_server.pathway.teams import seed_teams
from fhir_server.service import clock as server_clock
from fhir_server.service.resources import ResourceService
from fhir_server.storage.database import Database
from fhir_server.subscriptions import rules as subscription_rules

#: Receipts end this long before "now", so every case can be seen and decided by then.
SETTLE = timedelta(days=6)
#: Slots reach this far beyond "now", so the served demo books new referrals too.
AHEAD = timedelta(days=21)
SLOTS_PER_DAY = 6
DEFAULT_SEED = 311

__all__ = ["DemoError", "DemoOptions", "DemoResult", "run_demo"]


@dataclass(frozen=True, slots=True)
class DemoOptions:
    referrals: int = 220
    #: A seed whose draw lands near the published figures (any seed gives the same shape).
    seed: int = DEFAULT_SEED
    weeks: int = 8
    #: Where the insurer export files go (default: a temporary directory).
    out: Path | None = None
    #: The end of the simulated period (default: the real time).
    now: datetime | None = None


@dataclass
class DemoResult:
    skipped: bool
    report: Report
    #: The cohort's first referral (``ServiceRequest/<id>``), to look at over the API.
    example: str | None = None
    tally: Tally = field(default_factory=Tally)
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def build_service(db: Database, clock: SimulatedClock) -> ResourceService:
    """The service as the app builds it (pathway and subscription rules, so a subscriber
    hears of the demo's writes too), on the simulated clock."""
    hooks = pathway_hooks()
    outbound_rules.register(hooks)
    subscription_rules.register(hooks)
    return ResourceService(db, clock=clock, hooks=hooks)


def first_referral(service: ResourceService) -> str | None:
    """The marker of a loaded cohort: its first referral (every cohort starts with it)."""
    found = Lookups(service).referral_ids([f"{CASE_PREFIX}0001"])
    return f"ServiceRequest/{found[f'{CASE_PREFIX}0001']}" if found else None


def run_demo(db: Database, options: DemoOptions | None = None) -> DemoResult:
    """Run the whole demo on ``db`` (migrated), or only report when it already ran there."""
    options = options or DemoOptions()
    if options.weeks < 2 or options.referrals < 1:
        raise DemoError("the demo needs at least 2 weeks and 1 referral")
    started = time.perf_counter()
    now = (options.now or server_clock.now()).astimezone(UTC)
    first = (now - timedelta(weeks=options.weeks)).date()
    clock = SimulatedClock(datetime.combine(first - timedelta(days=1), datetime.min.time(), UTC))
    service = build_service(db, clock)
    example = first_referral(service)
    if example is not None:
        return DemoResult(True, program_report(service, parse_period(None, None)), example)
    steps: dict[str, float] = {}
    cases = generate(options.referrals, options.seed, first, (now - SETTLE).date())
    lap = time.perf_counter()
    seed_teams(service, first, ((now + AHEAD).date() - first).days, SLOTS_PER_DAY)
    steps["teams and slots"] = time.perf_counter() - lap
    with tempfile.TemporaryDirectory(prefix="ivz-demo-") as tmp:
        out = options.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        with Clinic(service) as clinic:
            simulation = Simulation(service, clock, clinic, now, out)
            simulation.schedule_exports(cases)
            tally = simulation.run()
    lap = time.perf_counter()
    report = program_report(service, parse_period(None, None))
    steps["report"] = time.perf_counter() - lap
    seconds = time.perf_counter() - started
    return DemoResult(False, report, first_referral(service), tally, seconds, steps)

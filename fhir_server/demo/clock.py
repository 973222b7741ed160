"""A simulated server clock, so weeks of pathway happen in seconds with realistic times.

The service stamps ``lastUpdated`` and the booking rule reads "now" from the clock it was
built with; driving that clock lets booking windows, deadlines and history look as they
would have, had the referrals really arrived over the past weeks.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime


class SimulatedClock:
    """Callable like ``fhir_server.service.clock.now``; only ever moves forward."""

    def __init__(self, start: datetime) -> None:
        self._now = _ms(start)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance_to(self, when: datetime) -> datetime:
        """Move to ``when`` unless that is in the clock's past; returns the time now."""
        with self._lock:
            self._now = max(self._now, _ms(when))
            return self._now


def _ms(value: datetime) -> datetime:
    t = value.astimezone(UTC)
    return t.replace(microsecond=t.microsecond - t.microsecond % 1000)

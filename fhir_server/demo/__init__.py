"""Demo data: ``ivz demo`` (a synthetic cohort through the real adapters, :mod:`.run`) and the
single sample referral that ``ivz serve --demo`` loads (:mod:`.sample`)."""

from __future__ import annotations

from fhir_server.demo.sample import load_demo_data

__all__ = ["load_demo_data"]

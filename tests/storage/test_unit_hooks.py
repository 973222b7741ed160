"""After-hooks settle by chain depth, not by a count of runs."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_server.fhir.outcomes import FhirError
from fhir_server.service.hooks import Hooks
from fhir_server.service.resources import ResourceService, Unit
from fhir_server.storage.database import Database


def _basic(tag: str) -> dict[str, Any]:
    return {"resourceType": "Basic", "code": {"text": tag}}


def test_many_independent_hook_runs_in_one_unit_settle(db: Database) -> None:
    runs: list[str] = []
    hooks = Hooks()
    for _ in range(200):
        hooks.on_after("Basic", lambda unit, doc, before: runs.append(doc["id"]))
    service = ResourceService(db, hooks=hooks)
    with service.unit() as unit:
        unit.create_many([(_basic("many"), f"many-{n}-{id(runs)}") for n in range(60)])
    assert len(runs) == 12_000  # more runs than any fixed cap would allow


def test_a_rule_that_keeps_triggering_itself_is_refused_and_stores_nothing(db: Database) -> None:
    marker = f"loop-{id(db)}"

    def again(unit: Unit, doc: dict[str, Any], before: dict[str, Any] | None) -> None:
        unit.create(_basic(marker))

    hooks = Hooks()
    hooks.on_after("Basic", again)
    service = ResourceService(db, hooks=hooks)
    with pytest.raises(FhirError) as raised, service.unit() as unit:
        unit.create(_basic(marker))
    assert raised.value.status == 500
    plain = ResourceService(db, hooks=Hooks())
    assert plain.search.search(["Basic"], [("code:text", marker)]).matches == []
    plain.create("Basic", _basic(marker))  # the search above would have seen one
    assert len(plain.search.search(["Basic"], [("code:text", marker)]).matches) == 1

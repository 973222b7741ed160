"""The hot routes (read, update, search, create) come first in the route table; they must
never take a path that belongs to an operation, a history, the audit trail or an error."""

from __future__ import annotations

import pytest
from starlette.routing import BaseRoute, Match

from fhir_server.app import create_app
from fhir_server.settings import Settings


@pytest.fixture(scope="module")
def routes() -> list[BaseRoute]:
    return list(create_app(Settings(database_url="sqlite://", auth="off")).router.routes)


def _route(routes: list[BaseRoute], method: str, path: str) -> BaseRoute:
    """The route the app dispatches ``method path`` to (the first full match, as Starlette)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    raise AssertionError(f"no route for {method} {path}")


def _hot(route: BaseRoute) -> bool:
    return ":fhir_type" in str(getattr(route, "path", ""))


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("GET", "/fhir/Patient/pat-1.a", "read"),
        ("PUT", "/fhir/Patient/pat-1", "update"),
        ("GET", "/fhir/Observation", "search_type"),
        ("POST", "/fhir/Observation", "create"),
    ],
)
def test_the_commonest_interactions_take_the_hot_routes(
    routes: list[BaseRoute], method: str, path: str, endpoint: str
) -> None:
    route = _route(routes, method, path)
    assert _hot(route) and getattr(route, "name", None) == endpoint


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/fhir/Patient/$export"),
        ("GET", "/fhir/Patient/_history"),
        ("POST", "/fhir/Patient/_search"),
        ("GET", "/fhir/metadata"),
        ("GET", "/fhir/AuditEvent"),
        ("GET", "/fhir/AuditEvent/some-id"),
        ("POST", "/fhir/AuditEvent"),
        ("PUT", "/fhir/AuditEvent/some-id"),
        ("GET", "/fhir/Patient/not!an-id"),
        ("DELETE", "/fhir/Patient/pat-1"),
    ],
)
def test_operations_histories_audit_and_bad_ids_keep_their_own_routes(
    routes: list[BaseRoute], method: str, path: str
) -> None:
    assert not _hot(_route(routes, method, path))

"""Routes of FHIR operations (``$validate``, ``$verdict``, ``$pathway``, ``$program-report``).

They are registered before the RESTful routes of ``rest.py`` so that ``/Type/id/$op`` is never
taken for a compartment search or ``/Type/$op`` for a read. Each area keeps its endpoints in its
own module and registers them here with ``operation``; ``create_app`` imports those modules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[..., Awaitable[Response]]

#: (path below the FHIR base, method, endpoint), composed in create_app before rest.ROUTES.
OPERATION_ROUTES: list[tuple[str, str, Callable[[Request], Awaitable[Response]]]] = []
#: (absolute path, method, endpoint): non-FHIR pages such as ``/report/program.json``.
PAGE_ROUTES: list[tuple[str, str, Callable[[Request], Awaitable[Response]]]] = []


def _wrap(fn: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await fn(request, **request.path_params)

    endpoint.__name__ = fn.__name__
    return endpoint


def operation(path: str, method: str) -> Callable[[Endpoint], Endpoint]:
    """Register ``fn(request, **path_params)`` at ``path`` below the FHIR base."""

    def register(fn: Endpoint) -> Endpoint:
        OPERATION_ROUTES.append((path, method, _wrap(fn)))
        return fn

    return register


def page(path: str, method: str = "GET") -> Callable[[Endpoint], Endpoint]:
    """Register ``fn(request, **path_params)`` at an absolute ``path`` outside the FHIR base."""

    def register(fn: Endpoint) -> Endpoint:
        PAGE_ROUTES.append((path, method, _wrap(fn)))
        return fn

    return register

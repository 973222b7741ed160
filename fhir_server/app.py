"""Application factory: routers, error rendering and start-up in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.hl7v2 import http as hl7v2_http
from adapters.hl7v2 import outbound as outbound_rules
from adapters.hl7v2.listener import start_mllp
from adapters.hl7v2.sender import OutboundSender
from adapters.insurer.http import routes as insurer_routes
from fhir_server.api import booking_ops, operations, pathway_ops, profile_ops, rest
from fhir_server.api.bulk_ops import start_export_worker  # also registers its routes
from fhir_server.api.metadata import capability_statement
from fhir_server.api.render import outcome_response
from fhir_server.audit import api as audit_api
from fhir_server.audit import protect as audit_protect
from fhir_server.audit import start_writer
from fhir_server.audit.middleware import AuditMiddleware
from fhir_server.auth import endpoints as auth_endpoints
from fhir_server.auth.middleware import AuthMiddleware
from fhir_server.fhir.outcomes import FhirError, Issue
from fhir_server.logging import get_logger
from fhir_server.pathway.rules import pathway_hooks
from fhir_server.polling import RetryPolicy
from fhir_server.profiles.install import install_conformance
from fhir_server.profiles.registry import registry as profile_registry
from fhir_server.service.resources import ResourceService
from fhir_server.settings import Settings, get_settings
from fhir_server.storage import migrate
from fhir_server.storage import repository as repo
from fhir_server.storage.database import Database
from fhir_server.storage.failures import DATABASE_FAILURES, is_transient
from fhir_server.storage.fast_read import AsyncReader
from fhir_server.subscriptions import api as subscription_ops
from fhir_server.subscriptions import rules as subscription_rules
from fhir_server.subscriptions.context import RequestScope
from fhir_server.subscriptions.worker import DeliveryWorker

log = get_logger(__name__)

_HTTP_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported", 415: "not-supported"}


_OPERATION_MODULES = (booking_ops, pathway_ops, profile_ops, subscription_ops, audit_api)


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the server; ``database`` lets tests hand in an engine they manage."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = database or Database(settings.database_url, settings.db_pool_size)
        migrate.upgrade(db)
        app.state.db = db
        app.state.audit = start_writer(db, settings)
        hooks = pathway_hooks()
        outbound_rules.register(hooks)  # docs/hl7v2-outbound.md
        subscription_rules.register(hooks)  # docs/subscriptions.md
        audit_protect.register(hooks)  # docs/audit.md
        app.state.service = ResourceService(db, hooks=hooks)
        reader = None
        if not db.is_sqlite:
            reader = AsyncReader(db.url, max_size=settings.db_pool_size)
            await reader.open()
            app.state.service.async_reader = reader
        custom = app.state.service.load_custom_parameters()
        stored_before = _stored_ids(app.state.service, "SearchParameter")
        install_conformance(app.state.service)  # profiles/, idempotent (docs/profiles.md)
        _backfill_new_parameters(app.state.service, stored_before)
        app.state.capabilities = capability_statement(
            settings.public_base_url or settings.base_path, app.state.service.registry
        )
        if settings.demo_data:
            from fhir_server.demo import load_demo_data

            load_demo_data(app.state.service)
        mllp = None
        if settings.mllp_port is not None:  # several uvicorn workers share the port
            mllp = await start_mllp(
                settings.mllp_host, settings.mllp_port, app.state.service, reuse_port=True
            )
        log.info(
            "server ready", database=db.dialect, base_path=settings.base_path, custom_params=custom
        )
        app.state.export_worker = start_export_worker(app.state.service, settings)
        delivery = None
        if settings.subscription_delivery:
            delivery = DeliveryWorker(app.state.service, _retry_policy(settings, "subscription"))
            await delivery.start()
        outbound = None
        if settings.hl7_outbound:  # docs/hl7v2-outbound.md
            outbound = OutboundSender(
                db, _retry_policy(settings, "hl7_outbound"), app.state.service.clock
            )
            await outbound.start()
        yield
        if outbound is not None:
            await outbound.stop()
        app.state.export_worker.stop()  # running exports resume on the next start
        if delivery is not None:
            await delivery.stop()
        if mllp is not None:
            await mllp.close()
        intake = getattr(app.state, "hl7_intake", None)
        if intake is not None:
            intake.close()
        if reader is not None:
            await reader.close()
        app.state.audit.close()  # drains the queue
        if database is None:
            db.dispose()

    # FastAPI's native OpenTelemetry spans, metrics and logs cost on every request: opt-in.
    otel = settings.telemetry
    app = FastAPI(
        title="ivz-bridge FHIR R4 server",
        lifespan=lifespan,
        telemetry={"tracing": otel, "metrics": otel, "logs": otel},
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.router.routes.extend(auth_endpoints.routes(settings.base_path))  # before /fhir/{type}/{id}
    app.add_middleware(AuthMiddleware, settings=settings)  # IVZ_AUTH; docs/auth.md
    app.add_middleware(RequestScope)  # lets write hooks see the principal (subscriptions)
    for path, method, endpoint in rest.hot_routes() + operations.OPERATION_ROUTES + rest.ROUTES:
        app.router.routes.append(Route(settings.base_path + path, endpoint, methods=[method]))
    for path, method, endpoint in operations.PAGE_ROUTES:
        app.router.routes.append(Route(path, endpoint, methods=[method]))
    app.router.routes.extend(hl7v2_http.routes())  # POST /hl7v2
    app.router.routes.extend(insurer_routes())  # POST /ingest/insurer
    _install_error_handlers(app)
    app.add_middleware(AuditMiddleware)  # outermost: keep it the last add_middleware

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


def _retry_policy(settings: Settings, prefix: str) -> RetryPolicy:
    """A worker's policy from its ``IVZ_<PREFIX>_*`` settings (same fields for every worker)."""
    fields = (
        "poll_seconds",
        "retry_seconds",
        "retry_max_seconds",
        "max_attempts",
        "timeout_seconds",
        "lease_seconds",
    )
    return RetryPolicy(**{f: getattr(settings, f"{prefix}_{f}") for f in fields})


def _install_error_handlers(app: FastAPI) -> None:
    async def fhir_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FhirError)
        return outcome_response(request, exc.status, exc.issues, dict(exc.headers))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "processing")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"No FHIR endpoint at {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return outcome_response(request, exc.status_code, [Issue(code, message)], _headers(exc))

    async def validation_error(request: Request, exc: Exception) -> Response:
        return outcome_response(request, 400, [Issue("invalid", f"Invalid request: {exc}")])

    async def store_unavailable(request: Request, exc: Exception) -> Response:
        """The database is unreachable, overloaded or broke a lock cycle: 503 with Retry-After
        (storage/failures.py); a failure that a retry would repeat is a 500."""
        if not is_transient(exc):
            return await unexpected(request, exc)
        log.error("database unavailable", path=request.url.path, error=str(exc)[:300])
        message = (
            "The database is unavailable; try again later. A write cut off while committing "
            "may have been applied: read before sending a create again, or use If-None-Exist"
        )
        return outcome_response(request, 503, [Issue("transient", message)], {"Retry-After": "5"})

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", path=request.url.path, method=request.method)
        return outcome_response(
            request, 500, [Issue("exception", "Internal server error; the request was not applied")]
        )

    app.add_exception_handler(FhirError, fhir_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    for unavailable in DATABASE_FAILURES:
        app.add_exception_handler(unavailable, store_unavailable)
    app.add_exception_handler(Exception, unexpected)


def _headers(exc: StarletteHTTPException) -> dict[str, Any] | None:
    return dict(exc.headers) if exc.headers else None


def _stored_ids(service: ResourceService, resource_type: str) -> set[str]:
    with service.db.read() as conn:
        return {v.id for v in repo.current_of_type(conn, resource_type)}


def _backfill_new_parameters(service: ResourceService, stored_before: set[str]) -> None:
    """A program SearchParameter stored for the first time on a database that already holds
    resources of its base (written by an older version): index those resources, once."""
    bases = {
        base
        for sp in profile_registry().resources
        if sp["resourceType"] == "SearchParameter" and sp["id"] not in stored_before
        for base in sp.get("base", [])
    }
    for base in sorted(bases):
        with service.db.read() as conn:
            if not repo.current_batch(conn, base, 0, 1):
                continue  # nothing written without the parameter
        count = service.reindex(base)
        log.info("search parameters backfilled", resource_type=base, resources=count)

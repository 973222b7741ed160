"""Runtime settings, read from ``IVZ_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the server; each field maps to ``IVZ_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="IVZ_", extra="ignore")

    database_url: str = "sqlite:///./ivz.db"
    base_path: str = "/fhir"
    #: Public base URL used in Location headers and Bundle links; derived from the request if empty.
    public_base_url: str = ""
    auth: Literal["on", "off"] = "on"
    max_body_bytes: int = 10 * 1024 * 1024
    default_page_size: int = 20
    max_page_size: int = 1000
    max_bundle_entries: int = 10_000
    #: With as many overflow connections: 40, the worker thread limit, so none waits.
    db_pool_size: int = 20
    access_log: bool = False
    #: FastAPI's native OpenTelemetry instrumentation (spans, metrics, logs).
    telemetry: bool = False
    log_level: str = "INFO"
    log_json: bool = False
    demo_data: bool = False
    #: Also accept HL7 v2 over MLLP on this port (``ivz serve --mllp-port``).
    mllp_port: int | None = None
    mllp_host: str = "127.0.0.1"
    #: Bulk export (docs/bulk.md): NDJSON files are written below this directory.
    export_dir: str = "./exports"
    #: Lines per NDJSON file before the next file of the same type starts.
    export_max_lines: int = 100_000
    export_page_size: int = 500
    export_workers: int = 2
    #: A running job whose heartbeat is older than this was orphaned by a dead process.
    export_lease_seconds: int = 60
    #: Audit trail (docs/audit.md): a background writer commits a batch every N ms or M events;
    #: a full queue makes requests wait up to the timeout, then answers 503.
    audit_batch_size: int = 200
    audit_flush_ms: int = 50
    audit_queue_size: int = 10_000
    audit_queue_timeout_s: float = 5.0
    #: Answer a request only once its audit event is committed (group commit; docs/audit.md).
    audit_durable: bool = False
    #: Subscriptions (docs/subscriptions.md): the delivery worker of each server process.
    subscription_delivery: bool = True
    subscription_poll_seconds: float = 0.5
    #: First retry after this long, doubled per failure up to the max.
    subscription_retry_seconds: float = 2.0
    subscription_retry_max_seconds: float = 600.0
    #: After this many failed attempts the Subscription gets status ``error``.
    subscription_max_attempts: int = 6
    subscription_timeout_seconds: float = 10.0
    subscription_lease_seconds: float = 60.0
    #: Outbound HL7 v2 (docs/hl7v2-outbound.md): the sender of queued ORU^R01 of each process.
    hl7_outbound: bool = True
    hl7_outbound_poll_seconds: float = 1.0
    #: First retry after this long, doubled per failure up to the max.
    hl7_outbound_retry_seconds: float = 5.0
    hl7_outbound_retry_max_seconds: float = 600.0
    #: Rejections (AE, wrong MSA-2, no ACK) before a message is given up; transport failures
    #: (refused, timeout) are retried without limit.
    hl7_outbound_max_attempts: int = 6
    hl7_outbound_timeout_seconds: float = 30.0
    hl7_outbound_lease_seconds: float = 120.0
    # --- authorization (fhir_server/auth/, docs/auth.md) ---
    #: Token endpoint URL: issuer of access tokens, audience of client assertions; from the
    #: request (or IVZ_PUBLIC_BASE_URL's origin) + ``/auth/token`` if empty.
    auth_issuer: str = ""
    #: Audience of access tokens; the FHIR base URL if empty.
    auth_audience: str = ""
    #: Lifetime of access tokens in seconds.
    auth_token_lifetime: int = 300
    #: How long a fetched client JWKS (``--jwks-url``) is reused, in seconds.
    auth_jwks_cache_seconds: int = 300
    #: An external OpenID Connect issuer (e.g. Keycloak) whose tokens are accepted as well.
    auth_external_issuer: str = ""
    auth_external_jwks_url: str = ""
    #: ``aud`` required of external tokens; the FHIR base URL if empty.
    auth_external_audience: str = ""
    #: Claim naming the client kind (admin, insurer, team, ehr) in external tokens.
    auth_external_kind_claim: str = "ivz_kind"
    #: Claim holding the access-rule attributes of an external token, e.g. {"ik": "…"}.
    auth_external_attributes_claim: str = "ivz_attributes"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

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
    auth: Literal["on", "off"] = "off"
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

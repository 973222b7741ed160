from __future__ import annotations

import pytest

from fhir_server.service.resources import ResourceService
from fhir_server.storage.database import Database


@pytest.fixture()
def service(db: Database) -> ResourceService:
    return ResourceService(db)

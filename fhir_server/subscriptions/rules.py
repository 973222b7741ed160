"""The subscription hooks of the service's unit of work (``fhir_server.service.hooks``).

- before a Subscription is stored: check it (422 for criteria, channel or headers the server
  cannot act on) and accept it (``requested`` → ``active``);
- for every resource version written (an ``every`` hook, after the pathway's rules settled):
  for each active subscription on its type, run the
  criteria restricted to ``_id`` inside the unit and owe a notification (outbox row) in the
  same transaction.

Active subscriptions are cached per process; the cache is refreshed when the newest
Subscription version (``max(seq)``, one index probe per unit) differs from the one it was
built from, so a Subscription written by another process is seen by the next write.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection

from fhir_server.access.policy import Access, restrict
from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import FhirError
from fhir_server.logging import get_logger
from fhir_server.service.hooks import Hooks
from fhir_server.service.resources import Unit
from fhir_server.storage import clients, outbox
from fhir_server.storage import repository as repo
from fhir_server.storage.repository import StoredVersion
from fhir_server.subscriptions.context import current_client
from fhir_server.subscriptions.criteria import Spec, check_criteria, matches, read_spec

log = get_logger(__name__)


class ActiveSubscriptions:
    """Active subscriptions by resource type, rebuilt when a Subscription changed."""

    def __init__(self) -> None:
        self._stamp = -1
        self._by_type: dict[str, tuple[Spec, ...]] = {}
        self._lock = threading.Lock()
        #: Units that already compared the stamp (one probe per transaction, not per write).
        self._checked: WeakKeyDictionary[Unit, bool] = WeakKeyDictionary()

    def for_type(self, unit: Unit, resource_type: str) -> tuple[Spec, ...]:
        with self._lock:
            fresh = unit in self._checked
        if not fresh:
            self._refresh(unit.conn)
            with self._lock:
                self._checked[unit] = True
        return self._by_type.get(resource_type, ())

    def invalidate(self, unit: Unit) -> None:
        """A Subscription was written in this unit: compare the stamp again on the next write."""
        with self._lock:
            self._checked.pop(unit, None)

    def _refresh(self, conn: Connection) -> None:
        stamp = repo.latest_seq_of_type(conn, "Subscription")
        if stamp == self._stamp:
            return
        by_type: dict[str, list[Spec]] = {}
        for stored in repo.current_of_type(conn, "Subscription"):
            spec = _active_spec(stored)
            if spec is not None:
                spec = dataclasses.replace(spec, access=_owner_access(conn, spec.id))
                by_type.setdefault(spec.resource_type, []).append(spec)
        with self._lock:
            self._by_type = {t: tuple(specs) for t, specs in by_type.items()}
            self._stamp = stamp


def _owner_access(conn: Connection, subscription_id: str) -> Access | None:
    """The owner's access as registered now; a removed client's subscription sees nothing."""
    owner = outbox.owner(conn, subscription_id)
    if owner is None:
        return None  # created with authorization off, or by the server itself
    client = clients.get_client(conn, owner)
    if client is None:
        return Access(owner, "removed", None)
    return restrict(client.client_id, client.kind, dict(client.attributes))


def _active_spec(stored: StoredVersion) -> Spec | None:
    if stored.content is None:
        return None
    doc = jsonio.loads_trusted(stored.content)
    if doc.get("status") != "active":
        return None
    try:
        return read_spec(doc)
    except FhirError:
        return None  # stored before this server checked Subscriptions: never matched


class SubscriptionRules:
    """The hooks, sharing one cache of active subscriptions."""

    def __init__(self) -> None:
        self.active = ActiveSubscriptions()

    def accept(
        self,
        unit: Unit,
        resource: dict[str, Any],
        current: StoredVersion | None,
        batch: Sequence[dict[str, Any]],
    ) -> dict[str, Any]:
        """Before-hook on Subscription: 422 for what cannot be served; requested → active."""
        spec = read_spec({**resource, "id": resource.get("id", "")})
        check_criteria(unit.search, unit.conn, spec)
        if resource.get("status") != "requested":
            return resource
        accepted = {k: v for k, v in resource.items() if k != "error"}
        accepted["status"] = "active"
        return accepted

    def subscription_written(
        self, unit: Unit, doc: dict[str, Any], before: dict[str, Any] | None
    ) -> None:
        """After-hook on Subscription: refresh the cache; remember the creating client."""
        self.active.invalidate(unit)
        client = current_client()
        if client is not None:
            outbox.record_owner(unit.conn, doc["id"], client, unit.clock())

    def notify(self, unit: Unit, doc: dict[str, Any]) -> None:
        """Every-write hook: owe a notification to each subscription that matches."""
        specs = self.active.for_type(unit, doc["resourceType"])
        if not specs:
            return
        hits = []
        for spec in specs:
            try:
                if matches(unit.search, unit.conn, spec, doc["id"]):
                    hits.append(spec.id)
            except FhirError as exc:  # e.g. a custom SearchParameter removed since: skip it
                log.warning("subscription criteria failed", subscription=spec.id, error=str(exc))
        version = int(doc["meta"]["versionId"])
        outbox.enqueue(unit.conn, hits, doc["resourceType"], doc["id"], version, unit.clock())


def register(hooks: Hooks) -> SubscriptionRules:
    """Add the subscription hooks to ``hooks`` (the app's, next to the pathway's)."""
    rules = SubscriptionRules()
    hooks.on_before("Subscription", rules.accept)
    hooks.on_after("Subscription", rules.subscription_written)
    hooks.on_every_write(rules.notify)
    return rules

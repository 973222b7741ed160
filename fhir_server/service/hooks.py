"""Rules that run inside the unit of work of the write that triggers them.

Every write path (REST, bundle entries, HL7 v2, insurer import) ends in ``Unit.create_many``,
``Unit.update`` or ``Unit.update_many``; those call the hooks registered for the resource type,
so a rule such as "book an active referral" commits or rolls back with the write itself.

- ``before`` hooks may change a resource before it is stamped and stored (attach an
  Observation to its referral, keep the program's elements of an Appointment). They see the
  current stored version (None for a create) and the other resources of the same call.
- ``after`` hooks run once the unit's own work is done, just before it commits, in write
  order; anything they write in the same unit may queue further ``after`` hooks. Running
  them at the end lets them see every resource of a transaction Bundle, whatever its order.

- ``every`` hooks observe each version written, of any type, once the after-hooks settled
  (subscriptions: an outbox row in the same transaction). They must not write resources,
  and do not count towards ``MAX_HOOK_DEPTH``.

Types without hooks cost one dict lookup per write. The service stays usable without any
hooks (``Hooks()``); the pathway registers its rules with ``fhir_server.pathway.rules``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fhir_server.service.resources import Unit
    from fhir_server.storage.repository import StoredVersion

Resource = dict[str, Any]
#: (unit, resource to write, current stored version or None, the call's other resources).
BeforeHook = Callable[["Unit", Resource, "StoredVersion | None", Sequence[Resource]], Resource]
#: (unit, the version just written as stored, the previous content or None).
AfterHook = Callable[["Unit", Resource, "Resource | None"], None]
#: (unit, a version just written as stored), for every resource type.
EveryHook = Callable[["Unit", Resource], None]

#: A write made by an after-hook triggered by a write made by an after-hook … this deep is a
#: rule that keeps triggering itself. Depth, not a count of runs: a 10,000-entry transaction
#: legitimately runs tens of thousands of hooks, each chain only a few deep.
MAX_HOOK_DEPTH = 100


@dataclass
class Hooks:
    """Hooks per resource type."""

    before: dict[str, list[BeforeHook]] = field(default_factory=dict)
    after: dict[str, list[AfterHook]] = field(default_factory=dict)
    every: list[EveryHook] = field(default_factory=list)

    def on_before(self, resource_type: str, hook: BeforeHook) -> None:
        self.before.setdefault(resource_type, []).append(hook)

    def on_after(self, resource_type: str, hook: AfterHook) -> None:
        self.after.setdefault(resource_type, []).append(hook)

    def on_every_write(self, hook: EveryHook) -> None:
        self.every.append(hook)

    def __bool__(self) -> bool:
        return bool(self.before or self.after or self.every)


_default: Hooks | None = None


def set_default(hooks: Hooks | None) -> None:
    """The hooks of services built without explicit ones (the ``ivz`` commands set this)."""
    global _default
    _default = hooks


def default() -> Hooks:
    return _default if _default is not None else Hooks()

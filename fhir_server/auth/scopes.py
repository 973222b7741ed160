"""SMART scopes (v2 ``system/Type.cruds`` and v1 ``system/Type.read|write|*``) as sets of rights.

A scope grants permissions on one resource type (or ``*``). The token endpoint grants the
intersection of what a client asks for and what it is registered for; the middleware asks
whether the granted scopes cover what an interaction needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

PERMISSIONS = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^system/([A-Za-z]+|\*)\.([a-z*]+)$")


@dataclass(frozen=True)
class Scope:
    """Rights ``perms`` (letters of ``cruds``) on ``resource_type`` (or ``*``)."""

    resource_type: str
    perms: frozenset[str]

    def __str__(self) -> str:
        letters = "".join(p for p in PERMISSIONS if p in self.perms)
        return f"system/{self.resource_type}.{letters}"


def parse_scope(text: str) -> Scope | None:
    """A system scope, or None for anything else (patient/user scopes, openid, queries)."""
    match = _SCOPE.match(text)
    if match is None:
        return None
    resource_type, perms = match.groups()
    if perms in _V1:
        return Scope(resource_type, frozenset(_V1[perms]))
    if not perms or any(p not in PERMISSIONS for p in perms):
        return None
    order = [PERMISSIONS.index(p) for p in perms]
    if order != sorted(set(order)):  # v2 letters appear once each, in order
        return None
    return Scope(resource_type, frozenset(perms))


def parse_scopes(texts: Iterable[str]) -> list[Scope]:
    return [s for s in (parse_scope(t) for t in texts) if s is not None]


def is_valid(text: str) -> bool:
    return parse_scope(text) is not None


def grant(requested: Iterable[str], allowed: Iterable[str]) -> list[str]:
    """The requested scopes narrowed to what ``allowed`` covers (empty: nothing grantable)."""
    allowed_scopes = parse_scopes(allowed)
    granted: dict[str, set[str]] = {}
    for want in parse_scopes(requested):
        for have in allowed_scopes:
            perms = want.perms & have.perms
            if not perms:
                continue
            if have.resource_type in ("*", want.resource_type):
                target = want.resource_type
            elif want.resource_type == "*":
                target = have.resource_type
            else:
                continue
            granted.setdefault(target, set()).update(perms)
    return [str(Scope(t, frozenset(p))) for t, p in sorted(granted.items())]


def permits(scopes: Iterable[str], resource_type: str, perm: str) -> bool:
    """Whether ``scopes`` give ``perm`` on ``resource_type`` (``*`` asks for every type)."""
    for scope in parse_scopes(scopes):
        if perm in scope.perms and scope.resource_type in ("*", resource_type):
            return True
    return False

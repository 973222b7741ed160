"""How what a row asks for combines with what is stored: the adapter owns some elements of a
resource, others belong to whoever else writes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.insurer import resources

Content = dict[str, Any]
Merge = Callable[[Content | None, Content], Content]


def replace(_current: Content | None, ours: Content) -> Content:
    return ours


def fill(current: Content | None, ours: Content) -> Content:
    """Someone else's organisation or practitioner: add what it lacks, change nothing."""
    if current is None:
        return ours
    return {**ours, **current}


def _slice(items: list[Any], owned: Callable[[Any], bool], ours: list[Any]) -> list[Any]:
    """Replace the entries we own (by a predicate) with ours, keeping the rest in place."""
    kept = [i for i in items if not (isinstance(i, dict) and owned(i))]
    return ours + kept


def merge_patient(current: Content | None, ours: Content) -> Content:
    """An existing patient keeps what others recorded (other identifiers, maiden names, work
    phones); the insurer's KVNR, official name, birth date, gender, home address and home
    phone and e-mail replace ours from before."""
    if current is None:
        return ours
    out = dict(current)
    for key in ("gender", "birthDate"):
        out[key] = ours[key]
    if "_gender" in ours:
        out["_gender"] = ours["_gender"]
    else:
        out.pop("_gender", None)
    slices: dict[str, Callable[[Any], bool]] = {
        "identifier": lambda i: i.get("system") == resources.KVNR_SYSTEM,
        "name": lambda n: n.get("use", "official") == "official",
        "telecom": lambda t: t.get("use") == "home" and t.get("system") in ("phone", "email"),
        "address": lambda a: a.get("use") == "home",
    }
    for key, owned in slices.items():
        merged = _slice(current.get(key, []), owned, ours.get(key, []))
        if merged:
            out[key] = merged
        else:
            out.pop(key, None)
    return out

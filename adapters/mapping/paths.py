"""Target paths of mapping rules: ``name``, ``a.b``, ``list[]`` (append), ``list[0]``, ``value[x]``.

Setting follows one policy everywhere: the first rule to set a scalar wins (so rules list
sources in order of preference), appends skip values already present, and a choice element
``value[x]`` is set once whatever its type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

StepKind = Literal["key", "append", "index", "choice"]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    kind: StepKind
    index: int = 0


Path = tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Typed:
    """A value for a choice element: ``Typed("Quantity", {...})`` sets ``valueQuantity``."""

    type: str
    value: Any


@lru_cache(maxsize=4096)
def parse_path(text: str) -> Path:
    """Parse a target path; ValueError with the reason when it is malformed."""
    steps = []
    parts = text.split(".")
    for position, part in enumerate(parts):
        name, bracket, rest = part.partition("[")
        if (
            not name
            or not (name[0].isalpha() or name[0] == "_")
            or not name.replace("_", "").isalnum()
        ):
            raise ValueError(f"bad step {part!r} in path {text!r}")
        if not bracket:
            steps.append(Step(name, "key"))
        elif rest == "]":
            steps.append(Step(name, "append"))
        elif rest == "x]":
            if position != len(parts) - 1:
                raise ValueError(f"a choice [x] must be the last step of {text!r}")
            steps.append(Step(name, "choice"))
        elif rest.endswith("]") and rest[:-1].isdigit():
            steps.append(Step(name, "index", int(rest[:-1])))
        else:
            raise ValueError(f"bad step {part!r} in path {text!r}")
    return tuple(steps)


def choice_key(obj: dict[str, Any], base: str) -> str | None:
    """The key already holding choice element ``base[x]`` (``valueQuantity``), if any."""
    size = len(base)
    for key in obj:
        if key.startswith(base) and len(key) > size and key[size].isupper():
            return key
    return None


def get(obj: dict[str, Any], path: Path) -> Any:
    """The value at ``path`` (an append step reads the last element), or None."""
    current: Any = obj
    for step in path:
        if not isinstance(current, dict):
            return None
        if step.kind == "choice":
            key = choice_key(current, step.name)
            return current[key] if key else None
        current = current.get(step.name)
        if step.kind in ("append", "index"):
            if not isinstance(current, list) or not current:
                return None
            current = current[-1] if step.kind == "append" else _at(current, step.index)
    return current


def _at(items: list[Any], index: int) -> Any:
    return items[index] if index < len(items) else None


def is_set(value: Any) -> bool:
    return value is not None and value != "" and value != [] and value != {}


def assign(
    obj: dict[str, Any], path: Path, value: Any, overwrite: bool = False, append: bool = False
) -> bool:
    """Set ``value`` at ``path`` under the policy above; True when something changed."""
    current = obj
    for step in path[:-1]:
        current = _descend(current, step)
    return _set(current, path[-1], value, overwrite, append)


Assign = Callable[[dict[str, Any], Any], bool]


def assigner(path: Path, overwrite: bool = False, append: bool = False) -> Assign:
    """``assign`` for one path and policy, specialised once (a rule sets values often)."""
    last = path[-1]
    if len(path) > 1:
        return lambda obj, value: assign(obj, path, value, overwrite, append)
    name = last.name
    if last.kind == "append":

        def add(obj: dict[str, Any], value: Any) -> bool:
            items = obj.setdefault(name, [])
            if value in items:
                return False
            items.append(value)
            return True

        return add
    if last.kind == "key" and not overwrite and not append:

        def first(obj: dict[str, Any], value: Any) -> bool:
            if is_set(obj.get(name)):
                return False
            obj[name] = value
            return True

        return first
    return lambda obj, value: _set(obj, last, value, overwrite, append)


def _set(current: dict[str, Any], last: Step, value: Any, overwrite: bool, append: bool) -> bool:
    if last.kind == "append":
        items = current.setdefault(last.name, [])
        if value in items:
            return False
        items.append(value)
        return True
    if last.kind == "index":
        items = current.setdefault(last.name, [])
        while len(items) <= last.index:
            items.append({})
        if is_set(items[last.index]) and not overwrite:
            return False
        items[last.index] = value
        return True
    if last.kind == "choice":
        if not isinstance(value, Typed):
            raise TypeError(f"choice element {last.name}[x] needs a typed value")
        existing = choice_key(current, last.name)
        if existing is not None:
            if not overwrite:
                return False
            del current[existing]
        current[last.name + value.type] = value.value
        return True
    existing_value = current.get(last.name)
    if is_set(existing_value):
        if append and isinstance(existing_value, str) and isinstance(value, str):
            if value in existing_value.split("\n"):
                return False
            current[last.name] = f"{existing_value}\n{value}"
            return True
        if not overwrite:
            return False
    current[last.name] = value
    return True


def _descend(current: dict[str, Any], step: Step) -> dict[str, Any]:
    if step.kind == "key":
        child = current.get(step.name)
        if not isinstance(child, dict):
            child = current[step.name] = {}
        return child
    items = current.setdefault(step.name, [])
    if step.kind == "append":
        element: dict[str, Any] = {}
        items.append(element)
        return element
    while len(items) <= step.index:
        items.append({})
    found = items[step.index]
    if not isinstance(found, dict):
        raise TypeError(f"{step.name}[{step.index}] is not an element")
    return found

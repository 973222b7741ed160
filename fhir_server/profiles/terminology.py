"""Membership in the program's ValueSets, for required bindings.

Only what the program's ValueSets use is supported: ``compose.include`` of a whole CodeSystem,
of a ``concept`` list, or of an ``is-a`` filter. ``is-a`` is decided on the code alone: a code
is in ``5-836`` when it equals it or continues it after a dot (``5-836.30``), which is how OPS
(and ICD-10-GM) codes nest; no terminology server is asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Include:
    """One ``compose.include``: a system with listed codes, is-a roots, or all its codes."""

    system: str
    codes: frozenset[str]
    roots: tuple[str, ...]

    def contains(self, code: str) -> bool:
        if not self.codes and not self.roots:
            return True
        if code in self.codes:
            return True
        return any(code == root or code.startswith(root + ".") for root in self.roots)


@dataclass(frozen=True, slots=True)
class ValueSetIndex:
    """A ValueSet reduced to what a membership test needs."""

    url: str
    includes: tuple[Include, ...]

    def contains(self, system: str | None, code: str) -> bool:
        """Whether ``system|code`` is in the set; a bare ``code`` (system None) matches any."""
        return any(
            (system is None or inc.system == system) and inc.contains(code) for inc in self.includes
        )

    def describe(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def index_value_set(
    value_set: dict[str, Any], code_systems: Mapping[str, frozenset[str]]
) -> ValueSetIndex:
    """Compile a ValueSet; a whole program CodeSystem (``code_systems``) is its codes, an
    external one counts as complete. Anything but the supported includes is refused."""
    includes = []
    for inc in value_set.get("compose", {}).get("include", []):
        if "valueSet" in inc or "system" not in inc:
            raise ValueError(f"{value_set['url']}: only includes of a system are supported")
        roots = []
        for f in inc.get("filter", []):
            if f.get("property") != "concept" or f.get("op") != "is-a":
                raise ValueError(f"{value_set['url']}: only 'concept is-a' filters are supported")
            roots.append(str(f["value"]))
        codes = frozenset(str(c["code"]) for c in inc.get("concept", []))
        if not codes and not roots and inc["system"] in code_systems:
            codes = code_systems[inc["system"]]
        includes.append(Include(inc["system"], codes, tuple(roots)))
    return ValueSetIndex(value_set["url"], tuple(includes))


def coded_in(value: Any, value_set: ValueSetIndex) -> bool | None:
    """Whether a code, Coding or CodeableConcept is in ``value_set``; None when not coded.

    A CodeableConcept is in the set when one of its codings is (FHIR's rule for required
    bindings); one without codings is not.
    """
    if isinstance(value, str):
        return value_set.contains(None, value)
    if not isinstance(value, dict):
        return None
    if "coding" in value or "text" in value:
        codings = value.get("coding") or []
        return any(_coding_in(c, value_set) for c in codings if isinstance(c, dict))
    if "code" in value or "system" in value:
        return _coding_in(value, value_set)
    return None


def _coding_in(coding: dict[str, Any], value_set: ValueSetIndex) -> bool:
    code, system = coding.get("code"), coding.get("system")
    if not isinstance(code, str) or not isinstance(system, str):
        return False
    return value_set.contains(system, code)

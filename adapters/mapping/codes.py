"""Code data the transforms consult: code maps, v2 tables, coding-system names, identifier
systems and units. All of it is read from ``mappings/codes`` (never from the spec files at
run time); ``tools/build_v2_codes.py`` generates the spec-derived parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from adapters.mapping.spec import CodeMap, CodeMapEntry

_STRICT = ConfigDict(extra="forbid", frozen=True)

V2_TABLE_BASE = "http://terminology.hl7.org/CodeSystem/v2-"
UCUM = "http://unitsofmeasure.org"


class Coding(BaseModel):
    model_config = _STRICT

    system: str
    code: str
    display: str | None = None


class IdentifierSystem(BaseModel):
    model_config = _STRICT

    system: str
    type: Coding | None = None
    note: str = ""


class IdentifierSystems(BaseModel):
    """Assigning authorities (by OID or namespace) and identifier types to Identifier.system."""

    model_config = _STRICT

    oids: dict[str, IdentifierSystem] = {}
    namespaces: dict[str, IdentifierSystem] = {}
    types: dict[str, IdentifierSystem] = {}


class Units(BaseModel):
    """Units known to be UCUM codes, and common spellings of UCUM units."""

    model_config = _STRICT

    ucum: list[str]
    aliases: dict[str, str] = {}
    #: Units of time durations (SCH-10, AIS-8) in minutes.
    minutes: dict[str, float] = {}


class Table(BaseModel):
    model_config = _STRICT

    url: str
    title: str = ""
    concepts: dict[str, str]


class CodingSystems(BaseModel):
    """v2 coding-system names (CWE-3, table 0396) to FHIR system URIs."""

    model_config = _STRICT

    names: dict[str, str]
    #: Prefixes of names that end in a version year (ICD10GM2016): prefix -> system.
    versioned: dict[str, str] = {}


@dataclass
class Codes:
    maps: dict[str, CodeMap] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    coding_systems: dict[str, str] = field(default_factory=dict)
    versioned_systems: dict[str, str] = field(default_factory=dict)
    identifiers: IdentifierSystems = field(default_factory=IdentifierSystems)
    units: Units = field(default_factory=lambda: Units(ucum=[]))
    _by_url: dict[str, Table] = field(default_factory=dict)
    _ucum: frozenset[str] = frozenset()
    _systems_upper: dict[str, str] = field(default_factory=dict)
    _names: dict[str, str | None] = field(default_factory=dict)
    _versions: dict[str, str | None] = field(default_factory=dict)

    def freeze(self) -> Codes:
        """Build the lookup indexes once all files are read."""
        self._by_url = {t.url: t for t in self.tables.values()}
        self._ucum = frozenset(self.units.ucum)
        self._systems_upper = {k.upper(): v for k, v in self.coding_systems.items()}
        self._versions = {}
        return self

    def lookup(self, map_id: str, code: str) -> CodeMapEntry | None:
        code_map = self.maps[map_id]
        return code_map.map.get(code) or code_map.map.get(code.upper()) or code_map.default

    def is_unmapped(self, map_id: str, code: str) -> bool:
        return code in self.maps[map_id].unmapped

    def target_system(self, map_id: str) -> str:
        return self.maps[map_id].target

    def table_url(self, table: str) -> str:
        found = self.tables.get(table)
        return found.url if found else V2_TABLE_BASE + table

    def system_for_name(self, name: str) -> str | None:
        """CWE-3 to a system URI: a v2 table (HL7nnnn), a known or versioned name (cached)."""
        if name in self._names:
            return self._names[name]
        found = self._system_for_name(name.strip().upper())
        _remember(self._names, name, found)
        return found

    def _system_for_name(self, upper: str) -> str | None:
        if not upper:
            return None
        if upper.startswith("HL7") and upper[3:].isdigit() and len(upper) == 7:
            return self.table_url(upper[3:])
        if upper.startswith("HL7-") and upper[4:].isdigit():
            return self.table_url(upper[4:])
        found = self._systems_upper.get(upper)
        if found is None:
            versioned = self._versioned(upper)
            found = versioned[0] if versioned else None
        return found

    def version_for_name(self, name: str) -> str | None:
        """The version a German coding-system name carries (ICD10GM2016: 2016; cached)."""
        if name in self._versions:
            return self._versions[name]
        versioned = self._versioned(name.strip().upper())
        found = versioned[1] if versioned else None
        _remember(self._versions, name, found)
        return found

    def _versioned(self, upper: str) -> tuple[str, str] | None:
        for prefix, system in self.versioned_systems.items():
            rest = upper[len(prefix) :]
            if upper.startswith(prefix.upper()) and len(rest) == 4 and rest.isdigit():
                return system, rest
        return None

    def display(self, system: str, code: str) -> str | None:
        table = self._by_url.get(system)
        return table.concepts.get(code) if table else None

    def ucum(self, unit: str) -> str | None:
        """The UCUM code for a unit as sent, when it is (or is a known spelling of) one."""
        if unit in self._ucum:
            return unit
        return self.units.aliases.get(unit)


#: Names come from messages (CWE-3): a sender inventing new ones must not grow memory forever.
_MAX_REMEMBERED = 4096


def _remember(cache: dict[str, str | None], name: str, found: str | None) -> None:
    if len(cache) >= _MAX_REMEMBERED:
        cache.clear()
    cache[name] = found

"""The access rules of ``fhir_server/data/access-rules.yaml``, loaded and checked once.

The rules are data so that a reviewer reads one file to know who sees what; the SQL that
applies them is ``fhir_server/storage/access_sql.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources as package_files
from typing import Any

import yaml

from fhir_server.fhir.schema import resource_types


class RulesError(ValueError):
    """The access rules file is unusable (raised at start-up)."""


@dataclass(frozen=True)
class Rules:
    unrestricted_kinds: frozenset[str]
    open_types: frozenset[str]
    admin_written_types: frozenset[str]
    insurer_attribute: str
    payor_identifier_system: str
    based_on_param: str
    member_params: tuple[str, ...]
    team_attribute: str
    team_actor_types: tuple[str, ...]
    team_inactive_status: tuple[str, ...]
    ehr_attribute: str
    ehr_requester_types: tuple[str, ...]
    ehr_proposal_link_param: str


def _strings(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RulesError(f"access rules: '{key}' must be a list of names")
    return tuple(value)


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise RulesError(f"access rules: section '{key}' is missing")
    return value


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise RulesError(f"access rules: '{key}' must be a non-empty string")
    return value


def parse(data: Any) -> Rules:
    if not isinstance(data, dict):
        raise RulesError("access rules: expected a mapping")
    known = resource_types()
    open_types = _strings(data, "open_types")
    admin_written = _strings(data, "admin_written_types")
    unknown = sorted(t for t in (*open_types, *admin_written) if t not in known)
    if unknown:
        raise RulesError(f"access rules: unknown resource types {unknown}")
    insurer, case = _section(data, "insurer"), _section(data, "case")
    team, ehr = _section(data, "team"), _section(data, "ehr")
    return Rules(
        unrestricted_kinds=frozenset(_strings(data, "unrestricted_kinds")),
        open_types=frozenset(open_types),
        admin_written_types=frozenset(admin_written),
        insurer_attribute=_text(insurer, "attribute"),
        payor_identifier_system=_text(insurer, "payor_identifier_system"),
        based_on_param=_text(case, "based_on_param"),
        member_params=_strings(case, "member_params"),
        team_attribute=_text(team, "attribute"),
        team_actor_types=_strings(team, "actor_types"),
        team_inactive_status=_strings(team, "inactive_status"),
        ehr_attribute=_text(ehr, "attribute"),
        ehr_requester_types=_strings(ehr, "requester_types"),
        ehr_proposal_link_param=_text(ehr, "proposal_link_param"),
    )


@cache
def rules() -> Rules:
    text = package_files.files("fhir_server.data").joinpath("access-rules.yaml").read_text()
    return parse(yaml.safe_load(text))

"""Layout files (``mappings/insurer/<layout>.yaml``): which column feeds which FHIR element.

A layout is data, validated here when loaded; the engine knows the fixed vocabulary of
targets (:class:`Target`) and never a layout by name, so a new insurer needs only a new file.
"""

from __future__ import annotations

import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: Shipped layouts; ``IVZ_INSURER_MAPPINGS`` or an explicit directory takes precedence.
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "mappings" / "insurer"


class Target(StrEnum):
    """The elements a column can feed: the program's referral model, named as FHIR elements."""

    REFERRAL_ID = "referral.identifier"
    RECEIVED_AT = "referral.authoredOn"
    NOTES = "referral.note"
    KVNR = "Patient.identifier:KVNR"
    FAMILY = "Patient.name.family"
    GIVEN = "Patient.name.given"
    BIRTH_DATE = "Patient.birthDate"
    SEX = "Patient.gender"
    POSTAL_CODE = "Patient.address.postalCode"
    CITY = "Patient.address.city"
    PHONE = "Patient.telecom:phone"
    EMAIL = "Patient.telecom:email"
    INSURER_IK = "Coverage.payor:IK"
    INSURER_NAME = "Coverage.payor.display"
    DIAGNOSES = "Condition.code:ICD-10-GM"
    OPS_CODE = "proposal.code:OPS"
    OPS_TEXT = "proposal.code.text"
    SURGEON_LANR = "proposal.requester:LANR"
    SURGEON_NAME = "proposal.requester.display"
    HOSPITAL_IK = "proposal.performer:IK"
    HOSPITAL_NAME = "proposal.performer.display"
    PLANNED_DATE = "proposal.occurrence"
    CONSENT = "Consent.provision.type"


#: What every referral needs, whatever the insurer (a layout must supply each of them).
REQUIRED = frozenset(
    {
        Target.REFERRAL_ID,
        Target.RECEIVED_AT,
        Target.KVNR,
        Target.FAMILY,
        Target.GIVEN,
        Target.BIRTH_DATE,
        Target.SEX,
        Target.INSURER_IK,
        Target.INSURER_NAME,
        Target.DIAGNOSES,
        Target.OPS_CODE,
    }
)

#: Coded targets and the canonical codes a layout's value map must translate into.
CANONICAL_CODES: dict[Target, frozenset[str]] = {
    # Amtliches Geschlecht: männlich, weiblich, divers, ohne Angabe.
    Target.SEX: frozenset({"M", "W", "D", "X"}),
    Target.CONSENT: frozenset({"permit", "deny"}),
}

Encoding = Literal["utf-8", "cp1252", "iso-8859-15", "iso-8859-1"]


class LayoutError(Exception):
    """A layout that cannot be used; the message names the file and every problem in it."""


class Source(BaseModel):
    """How the export is written: encodings to try, delimiter, date formats, time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    encodings: list[Encoding] = Field(default=["utf-8", "cp1252"], min_length=1)
    delimiter: Literal["auto", ";", ",", "\t"] = "auto"
    timezone: str = "Europe/Berlin"
    date_formats: list[str] = Field(default=["%Y-%m-%d", "%d.%m.%Y"], min_length=1)
    datetime_formats: list[str] = Field(
        default=[
            "%Y-%m-%dT%H:%M:%S%z",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%d.%m.%Y %H:%M:%S",
            "%d.%m.%Y %H:%M",
        ],
        min_length=1,
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone '{value}'") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class CodeVersions(BaseModel):
    """Coding.version of ICD-10-GM and OPS: a fixed year, or the year the referral arrived."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    icd10gm: str = Field(default="received-year", pattern=r"^(received-year|[0-9]{4})$")
    ops: str = Field(default="received-year", pattern=r"^(received-year|[0-9]{4})$")


class Layout(BaseModel):
    """One insurer's export format."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str
    source: Source = Source()
    #: Source column (CSV header / JSON key) -> target element.
    columns: dict[str, Target]
    #: Targets with the same value in every row (e.g. a file per insurer without an IK column).
    constants: dict[Target, str] = {}
    #: Per coded target: source value (matched case-insensitively) -> canonical code.
    values: dict[Target, dict[str, str]] = {}
    codes: CodeVersions = CodeVersions()

    @field_validator("columns")
    @classmethod
    def _one_column_per_target(cls, columns: dict[str, Target]) -> dict[str, Target]:
        seen: dict[Target, str] = {}
        for column, target in columns.items():
            if not column.strip():
                raise ValueError("a column name is empty")
            if target in seen:
                raise ValueError(f"'{seen[target]}' and '{column}' both map to {target.value}")
            seen[target] = column
        return columns

    @field_validator("values")
    @classmethod
    def _canonical_values(
        cls, values: dict[Target, dict[str, str]]
    ) -> dict[Target, dict[str, str]]:
        for target, mapping in values.items():
            allowed = CANONICAL_CODES.get(target)
            if allowed is None:
                coded = ", ".join(t.value for t in CANONICAL_CODES)
                raise ValueError(f"{target.value} takes no value map (only {coded} do)")
            wrong = sorted({code for code in mapping.values() if code not in allowed})
            if wrong:
                raise ValueError(
                    f"{target.value} maps to {wrong}; allowed codes are {sorted(allowed)}"
                )
        return {t: {k.strip().casefold(): v for k, v in m.items()} for t, m in values.items()}

    @model_validator(mode="after")
    def _complete(self) -> Layout:
        mapped = set(self.columns.values())
        both = sorted(t.value for t in mapped & set(self.constants))
        if both:
            raise ValueError(f"{both} have both a column and a constant")
        missing = sorted(t.value for t in REQUIRED - mapped - set(self.constants))
        if missing:
            raise ValueError(f"no column or constant for the required targets {missing}")
        for target in CANONICAL_CODES:
            if target in mapped and target not in self.values:
                raise ValueError(f"{target.value} has a column but no value map under 'values'")
        return self

    def column_of(self, target: Target) -> str | None:
        for column, mapped in self.columns.items():
            if mapped is target:
                return column
        return None


class _Loader(yaml.SafeLoader):
    """YAML where plain scalars stay text (no yes/no booleans, no octal postal codes) and
    duplicate keys are an error instead of a silent overwrite."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            line = key_node.start_mark.line + 1
            raise LayoutError(f"duplicate key '{key}' at line {line}")
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def find(name: str, directory: Path | None = None) -> Path:
    """The file for a layout name (or a path to a ``.yaml`` file given directly)."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise LayoutError(f"'{name}' is not a layout name")
    folder = directory or Path(os.environ.get("IVZ_INSURER_MAPPINGS") or DEFAULT_DIR)
    path = folder / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available(folder)) or "none"
        raise LayoutError(f"no layout '{name}' in {folder} (known: {known})")
    return path


def available(directory: Path | None = None) -> list[str]:
    folder = directory or Path(os.environ.get("IVZ_INSURER_MAPPINGS") or DEFAULT_DIR)
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load(name: str, directory: Path | None = None) -> Layout:
    """Find, parse and validate a layout; every problem is reported with where it is."""
    path = find(name, directory)
    return _load_file(path, path.stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _load_file(path: Path, _mtime: int) -> Layout:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise LayoutError(f"{path}: not valid YAML: {exc}") from exc
    except LayoutError as exc:
        raise LayoutError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise LayoutError(f"{path}: a layout file must be a mapping")
    try:
        layout = Layout.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise LayoutError(f"{path}: {problems}") from exc
    if layout.layout != path.stem:
        raise LayoutError(f"{path}: 'layout: {layout.layout}' does not match the file name")
    from adapters.insurer.referral import check_constants  # it knows how each target is checked

    try:
        check_constants(layout)
    except LayoutError as exc:
        raise LayoutError(f"{path}: {exc}") from exc
    return layout

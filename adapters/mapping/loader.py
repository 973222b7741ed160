"""Load and check every mapping file at start-up, so that a bad file fails loudly and early.

``load([root, overlay, ...])`` reads each root's ``hl7v2/`` and ``codes/`` folders; a later
root replaces files of the same name, and a message file with ``extends`` amends the one it
names (how a site adds its Z-segments). All problems are collected into one MappingError
whose lines name the file and the place in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ValidationError

from adapters.mapping import transforms
from adapters.mapping.codes import (
    Codes,
    CodingSystems,
    IdentifierSystems,
    Table,
    Units,
)
from adapters.mapping.events import DEFAULT_ROOT, read_events
from adapters.mapping.spec import (
    CodeMap,
    Condition,
    DatatypeMapping,
    Event,
    IdAlternative,
    Locator,
    MessageMapping,
    Profile,
    Rule,
    SegmentMapping,
    Select,
)

M = TypeVar("M", bound=BaseModel)


class MappingError(Exception):
    """The mapping files are inconsistent; ``problems`` lists each fault with its file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid mappings:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass
class MappingSet:
    """Everything the engine needs, checked and indexed."""

    profile: Profile
    zone: ZoneInfo
    events: dict[tuple[str, str], Event]
    messages: dict[str, MessageMapping]
    segments: dict[str, SegmentMapping]
    datatypes: dict[str, DatatypeMapping]
    codes: Codes
    #: Per message mapping: segment name -> the segment mappings applied, in order.
    plans: dict[str, dict[str, list[SegmentMapping]]] = field(default_factory=dict)
    #: Per message mapping: segment names that are mapped or knowingly ignored.
    known: dict[str, frozenset[str]] = field(default_factory=dict)


class _Reader:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.sources: dict[str, str] = {}  # "kind:name" -> file, for messages

    def yaml(self, path: Path) -> Any:
        try:
            return yaml.safe_load(path.read_text("utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            self.problems.append(f"{path}: cannot read: {exc}")
            return None

    def model(self, model: type[M], data: Any, path: Path) -> M | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"]) or "(top)"
                self.problems.append(f"{path}: {where}: {error['msg']}")
            return None

    def named(self, model: type[M], path: Path) -> M | None:
        """A file whose name is its mapping name (``segments/PID.yaml`` is mapping PID)."""
        data = self.yaml(path)
        if data is None:
            return None
        if not isinstance(data, dict):
            self.problems.append(f"{path}: expected a mapping at the top level")
            return None
        name = data.setdefault("name", path.stem)
        if name != path.stem:
            self.problems.append(f"{path}: name {name!r} differs from the file name")
        return self.model(model, data, path)


def load(roots: Sequence[Path] | None = None) -> MappingSet:
    """Read and check the mappings under ``roots`` (default: the project's ``mappings/``)."""
    roots = list(roots) if roots else [DEFAULT_ROOT]
    reader = _Reader()
    profile: Profile | None = None
    events: dict[tuple[str, str], Event] = {}
    messages: dict[str, MessageMapping] = {}
    segments: dict[str, SegmentMapping] = {}
    datatypes: dict[str, DatatypeMapping] = {}
    codes = Codes()
    for root in roots:
        v2 = root / "hl7v2"
        if (v2 / "profile.yaml").exists():
            profile = reader.model(Profile, reader.yaml(v2 / "profile.yaml"), v2 / "profile.yaml")
        if (v2 / "events.csv").exists():
            try:
                for event in read_events((v2 / "events.csv").read_text("utf-8"), str(v2)):
                    events[(event.message_type, event.trigger_event)] = event
            except ValueError as exc:
                reader.problems.append(str(exc))
        for path in _files(v2 / "messages"):
            found = reader.named(MessageMapping, path)
            if found is not None:
                messages[found.name] = _extend(found, messages, path, reader)
                reader.sources[f"message:{found.name}"] = str(path)
        for path in _files(v2 / "segments"):
            segment = reader.named(SegmentMapping, path)
            if segment is not None:
                segments[segment.name] = segment
                reader.sources[f"segment:{segment.name}"] = str(path)
        for path in _files(v2 / "datatypes"):
            datatype = reader.named(DatatypeMapping, path)
            if datatype is not None:
                datatypes[datatype.name] = datatype
                reader.sources[f"datatype:{datatype.name}"] = str(path)
        _load_codes(root / "codes", codes, reader)
    if profile is None:
        reader.problems.append("no hl7v2/profile.yaml in any mapping root")
        raise MappingError(reader.problems)
    zone = _zone(profile, reader)
    codes.freeze()
    mapping_set = MappingSet(profile, zone, events, messages, segments, datatypes, codes)
    _check(mapping_set, reader)
    if reader.problems:
        raise MappingError(reader.problems)
    _plan(mapping_set)
    return mapping_set


def _files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def _extend(
    found: MessageMapping, messages: dict[str, MessageMapping], path: Path, reader: _Reader
) -> MessageMapping:
    if found.extends is None:
        if found.add or found.remove:
            reader.problems.append(f"{path}: 'add'/'remove' need 'extends'")
        return found
    base = messages.get(found.extends)
    if base is None:
        reader.problems.append(f"{path}: extends unknown message mapping {found.extends!r}")
        return found
    names = [m for m in base.mappings if m not in found.remove] + found.add
    return base.model_copy(
        update={
            "mappings": list(dict.fromkeys(names)),
            "required": base.required + found.required,
            "ignore": base.ignore + found.ignore,
            "description": found.description or base.description,
        }
    )


def _load_codes(folder: Path, codes: Codes, reader: _Reader) -> None:
    if not folder.is_dir():
        return
    for path in _files(folder / "maps"):
        code_map = reader.model(CodeMap, reader.yaml(path), path)
        if code_map is not None:
            if code_map.id != path.stem:
                reader.problems.append(f"{path}: id {code_map.id!r} differs from the file name")
            codes.maps[code_map.id] = code_map
    tables = folder / "v2-tables.yaml"
    if tables.exists():
        data = reader.yaml(tables) or {}
        for number, table in (data.get("tables") or {}).items():
            found = reader.model(Table, table, tables)
            if found is not None:
                codes.tables[str(number)] = found
    systems = folder / "coding-systems.yaml"
    if systems.exists():
        found_systems = reader.model(CodingSystems, reader.yaml(systems), systems)
        if found_systems is not None:
            codes.coding_systems.update(found_systems.names)
            codes.versioned_systems.update(found_systems.versioned)
    identifiers = folder / "identifier-systems.yaml"
    if identifiers.exists():
        found_ids = reader.model(IdentifierSystems, reader.yaml(identifiers), identifiers)
        if found_ids is not None:
            codes.identifiers = IdentifierSystems(
                oids={**codes.identifiers.oids, **found_ids.oids},
                namespaces={**codes.identifiers.namespaces, **found_ids.namespaces},
                types={**codes.identifiers.types, **found_ids.types},
            )
    units = folder / "units.yaml"
    if units.exists():
        found_units = reader.model(Units, reader.yaml(units), units)
        if found_units is not None:
            codes.units = found_units


def _zone(profile: Profile, reader: _Reader) -> ZoneInfo:
    try:
        return ZoneInfo(profile.default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        reader.problems.append(
            f"profile.yaml: default_timezone {profile.default_timezone!r} is not a known zone"
        )
        return ZoneInfo("UTC")


# --- cross-references -------------------------------------------------------------------------


def _check(ms: MappingSet, reader: _Reader) -> None:
    problems = reader.problems
    for (kind, trigger), event in ms.events.items():
        if event.mapping not in ms.messages:
            problems.append(
                f"events.csv {kind}^{trigger}: no message mapping {event.mapping!r} "
                f"(have {sorted(ms.messages)})"
            )
    for message in ms.messages.values():
        where = reader.sources.get(f"message:{message.name}", message.name)
        for name in message.mappings:
            if name not in ms.segments:
                problems.append(f"{where}: mappings: unknown segment mapping {name!r}")
        for name in message.required + message.ignore:
            if not _segment_name(name):
                problems.append(f"{where}: {name!r} is not a segment name")
    for segment in ms.segments.values():
        where = reader.sources.get(f"segment:{segment.name}", segment.name)
        if not _segment_name(segment.segment):
            problems.append(f"{where}: segment: {segment.segment!r} is not a segment name")
        _check_conditions(ms, segment.when, f"{where}: when", problems)
        _check_ids(ms, segment.id, f"{where}: id", problems)
        for attach_name, attach in (
            ("merge_into", segment.merge_into),
            ("contributes_to", segment.contributes_to),
        ):
            if attach is not None:
                _check_names(ms, attach.to, f"{where}: {attach_name}.to", problems)
                _check_select(ms, attach.select, f"{where}: {attach_name}.select", problems)
        _check_rules(ms, segment.rules, f"{where}: rules", problems)
        for number, link in enumerate(segment.links):
            _check_names(ms, link.to, f"{where}: links[{number}].to", problems)
            _check_select(ms, link.select, f"{where}: links[{number}].select", problems)
    for datatype in ms.datatypes.values():
        where = reader.sources.get(f"datatype:{datatype.name}", datatype.name)
        _check_ids(ms, datatype.id, f"{where}: id", problems)
        _check_rules(ms, datatype.rules, f"{where}: rules", problems)
        for rule in _walk(datatype.rules):
            if rule.field is not None and rule.segment is None:
                problems.append(
                    f"{where}: a datatype mapping reads components, not fields "
                    f"(rule for {rule.target!r})"
                )


def _segment_name(name: str) -> bool:
    return len(name) == 3 and name[0].isalpha() and name.isalnum() and name.isupper()


def _check_names(ms: MappingSet, names: Iterable[str], where: str, problems: list[str]) -> None:
    for name in names:
        if name not in ms.segments:
            problems.append(f"{where}: unknown segment mapping {name!r}")


def _check_select(ms: MappingSet, select: Select | None, where: str, problems: list[str]) -> None:
    if select is None:
        return
    for name in select.until:
        if not _segment_name(name):
            problems.append(f"{where}.until: {name!r} is not a segment name")
    _check_conditions(ms, select.when, f"{where}.when", problems)


def _check_locator(ms: MappingSet, locator: Locator, where: str, problems: list[str]) -> None:
    if locator.segment is not None and not _segment_name(locator.segment):
        problems.append(f"{where}: {locator.segment!r} is not a segment name")
    _check_select(ms, locator.select, where, problems)


def _check_conditions(
    ms: MappingSet, conditions: Iterable[Condition], where: str, problems: list[str]
) -> None:
    for condition in conditions:
        for locator in (
            condition.valued,
            condition.empty,
            condition.equals,
            condition.in_,
            condition.not_in,
        ):
            if locator is not None:
                _check_locator(ms, locator, where, problems)


def _check_ids(
    ms: MappingSet, alternatives: list[IdAlternative], where: str, problems: list[str]
) -> None:
    for number, alternative in enumerate(alternatives):
        if all(part.qualifier for part in alternative.parts):
            problems.append(f"{where}[{number}]: every part is a qualifier; nothing identifies")
        for part in alternative.parts:
            _check_locator(ms, part, f"{where}[{number}]", problems)
            _check_conditions(ms, part.when, f"{where}[{number}]", problems)


def _walk(rules: Iterable[Rule]) -> Iterable[Rule]:
    for rule in rules:
        yield rule
        if rule.build:
            yield from _walk(rule.build)


def _check_rules(ms: MappingSet, rules: list[Rule], where: str, problems: list[str]) -> None:
    for number, rule in enumerate(rules):
        here = f"{where}[{number}] ({rule.target or rule.resource})"
        _check_locator(ms, rule, here, problems)
        _check_conditions(ms, rule.when, here, problems)
        path = rule.path
        choice = bool(path) and path is not None and path[-1].kind == "choice"
        if rule.datatype is not None:
            found = ms.datatypes.get(rule.datatype)
            if found is None:
                problems.append(f"{here}: unknown datatype mapping {rule.datatype!r}")
            elif found.resource:
                problems.append(f"{here}: {rule.datatype!r} makes a resource; use 'resource:'")
        if rule.resource is not None:
            found = ms.datatypes.get(rule.resource)
            if found is None or not found.resource:
                problems.append(f"{here}: {rule.resource!r} is not a resource-making mapping")
        if rule.reference is not None:
            _check_ids(ms, rule.reference.id, f"{here}: reference.id", problems)
        for code_map in (rule.map, rule.map_coding):
            if code_map is not None and code_map not in ms.codes.maps:
                problems.append(f"{here}: unknown code map {code_map!r}")
        if rule.table is not None and rule.table not in ms.codes.tables:
            problems.append(f"{here}: v2 table {rule.table!r} is not in codes/v2-tables.yaml")
        if rule.transform is not None:
            transform = transforms.NAMES.get(rule.transform)
            if transform is None:
                problems.append(
                    f"{here}: unknown transform {rule.transform!r} "
                    f"(known: {', '.join(sorted(transforms.NAMES))})"
                )
            else:
                unknown = set(rule.params) - transform.params
                if unknown:
                    problems.append(f"{here}: {rule.transform} takes no params {sorted(unknown)}")
                missing = transforms.REQUIRED_PARAMS.get(rule.transform, frozenset()) - set(
                    rule.params
                )
                if missing:
                    problems.append(f"{here}: {rule.transform} needs params {sorted(missing)}")
                if choice and transform.fhir_type is None and rule.transform not in _TYPED:
                    problems.append(f"{here}: {rule.transform} cannot fill a choice element")
        elif rule.params and rule.datatype is None and rule.build is None:
            problems.append(f"{here}: params without a transform")
        if choice and (rule.build is not None or rule.value is not None):
            problems.append(f"{here}: a choice element [x] needs a typed source, not build/value")
        if rule.build is not None:
            _check_rules(ms, rule.build, f"{here}.build", problems)


#: Transforms returning Typed values themselves.
_TYPED = frozenset({"quantity", "structured_numeric", "sampled_data", "period"})


# --- plans --------------------------------------------------------------------------------------


def _plan(ms: MappingSet) -> None:
    for message in ms.messages.values():
        plan: dict[str, list[SegmentMapping]] = {}
        for name in message.mappings:
            mapping = ms.segments[name]
            plan.setdefault(mapping.segment, []).append(mapping)
        ms.plans[message.name] = plan
        ms.known[message.name] = frozenset({"MSH", *plan, *message.ignore})

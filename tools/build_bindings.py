"""Build ``fhir_server/data/required_bindings.json`` from the official FHIR R4 (4.0.1) package.

The server must not read the spec at run time, so this tool distils what the required-binding
check needs into one compact file:

* ``valueSets``: each required-bound value set that can be expanded from the spec alone, as
  ``{system: [code, ...]}`` (``compose.include`` of whole code systems, ``concept`` lists and
  nested ``valueSet`` imports, minus ``compose.exclude``);
* ``notEnumerable``: the required-bound value sets that cannot be expanded from the spec alone
  (external terminologies such as UCUM, BCP-13 MIME types, ISO 4217 currencies, LOINC answer
  lists, or intensional ``filter`` rules), with the reason. These are listed, not checked;
* ``bindings``: ``{element path: value set URL}`` for every required binding of a base
  resource or datatype element with a coded type (choice elements by JSON name);
* ``resourceTypes``: the resource types, for dispatching nested resources;
* ``nodes``: the walk plan. For each type or backbone element (by path) from which a checked
  binding or a nested resource can be reached, the JSON keys worth visiting, grouped by their
  type ``{type: [key, ...]}``; a type is a datatype, a backbone path, ``Resource``,
  ``Element`` (a primitive's ``_key`` sibling) or a primitive type name. Keys ending in ``*``
  hold JSON arrays (``max`` > 1).

Usage::

    python tools/build_bindings.py [--core TGZ] [--valuesets JSON] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fhir-r4"
DEFAULT_CORE = SHARED / "hl7.fhir.r4.core-4.0.1.tgz"
DEFAULT_VALUESETS = SHARED / "valuesets.json"
DEFAULT_OUT = ROOT / "fhir_server" / "data" / "required_bindings.json"

#: Type codes that hold a code the binding applies to (anything else is walked, not checked).
CODED_TYPES = frozenset(
    {"code", "string", "uri", "Coding", "CodeableConcept", "Quantity", "Age", "Count"}
    | {"Distance", "Duration", "SimpleQuantity"}
)
#: Types whose instances nest a whole resource, dispatched on ``resourceType`` at run time.
RESOURCE_TYPE = "Resource"
#: Type of the ``_name`` JSON property that holds a primitive's id and extensions.
PRIMITIVE_EXTRAS = "Element"

Json = dict[str, Any]


class NotEnumerable(Exception):
    """A value set whose members cannot be listed from the spec alone."""


# --------------------------------------------------------------------------- loading


_WANTED = ("StructureDefinition-", "ValueSet-", "CodeSystem-")


def load_core(path: Path) -> tuple[list[Json], dict[str, Json], dict[str, Json]]:
    """Read StructureDefinitions, ValueSets and CodeSystems from the core package tarball."""
    structures: list[Json] = []
    value_sets: dict[str, Json] = {}
    code_systems: dict[str, Json] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            folder, _, name = member.name.rpartition("/")
            if folder != "package" or not name.startswith(_WANTED) or not name.endswith(".json"):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            resource = json.load(handle)
            kind = resource.get("resourceType")
            if kind == "StructureDefinition":
                structures.append(resource)
            elif kind == "ValueSet":
                value_sets[resource["url"]] = resource
            elif kind == "CodeSystem":
                code_systems[resource["url"]] = resource
    return structures, value_sets, code_systems


def merge_bundle(path: Path, value_sets: dict[str, Json], code_systems: dict[str, Json]) -> int:
    """Add ValueSets/CodeSystems from ``valuesets.json`` that the package lacks; return count."""
    bundle = json.loads(path.read_text(encoding="utf-8"))
    added = 0
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        tables = {"ValueSet": value_sets, "CodeSystem": code_systems}
        table = tables.get(resource.get("resourceType"))
        if table is not None and resource.get("url") and resource["url"] not in table:
            table[resource["url"]] = resource
            added += 1
    return added


# --------------------------------------------------------------------------- expansion


def strip_version(url: str) -> str:
    """Canonical URL without its ``|version`` suffix (bindings say ``...|4.0.1``)."""
    return url.split("|", 1)[0]


def _selectable(concept: Json) -> bool:
    """Abstract (``notSelectable``) concepts only group others; instances cannot use them."""
    return not any(
        prop.get("code") == "notSelectable" and prop.get("valueBoolean") is True
        for prop in concept.get("property", [])
    )


def _all_concepts(concepts: list[Json]) -> Iterator[str]:
    for concept in concepts:
        if _selectable(concept):
            yield concept["code"]
        yield from _all_concepts(concept.get("concept", []))


class Expander:
    """Expands value sets from the spec's own ValueSets and CodeSystems, memoised."""

    def __init__(self, value_sets: dict[str, Json], code_systems: dict[str, Json]) -> None:
        self.value_sets = value_sets
        self.code_systems = code_systems
        self._done: dict[str, dict[str, set[str]] | str] = {}

    def expand(self, url: str) -> dict[str, set[str]]:
        """Return ``{system: codes}`` for ``url`` or raise :class:`NotEnumerable`."""
        url = strip_version(url)
        if url not in self._done:
            self._done[url] = "cyclic value set import"
            try:
                self._done[url] = self._expand(url)
            except NotEnumerable as exc:
                self._done[url] = str(exc)
        found = self._done[url]
        if isinstance(found, str):
            raise NotEnumerable(found)
        return found

    def _expand(self, url: str) -> dict[str, set[str]]:
        value_set = self.value_sets.get(url)
        if value_set is None:
            raise NotEnumerable("value set is not defined in the FHIR specification")
        compose = value_set.get("compose")
        if not compose:
            raise NotEnumerable("value set has no compose")
        result: dict[str, set[str]] = {}
        for include in compose.get("include", []):
            _union(result, self._include(include))
        for exclude in compose.get("exclude", []):
            for system, codes in self._include(exclude).items():
                result.get(system, set()).difference_update(codes)
        return {system: codes for system, codes in result.items() if codes}

    def _include(self, include: Json) -> dict[str, set[str]]:
        if include.get("filter"):
            raise NotEnumerable(f"filter on {include.get('system')} (intensional definition)")
        parts: list[dict[str, set[str]]] = []
        system = include.get("system")
        if system:
            parts.append({system: self._system_codes(system, include.get("concept"))})
        parts.extend(self.expand(imported) for imported in include.get("valueSet", []))
        if not parts:
            raise NotEnumerable("include without system or valueSet")
        return _intersect(parts)

    def _system_codes(self, system: str, concepts: list[Json] | None) -> set[str]:
        if concepts:
            return {concept["code"] for concept in concepts}
        code_system = self.code_systems.get(system)
        if code_system is None:
            raise NotEnumerable(f"code system {system} is external to the FHIR specification")
        if code_system.get("content") != "complete":
            content = code_system.get("content")
            raise NotEnumerable(f"code system {system} is not complete in the spec ({content})")
        return set(_all_concepts(code_system.get("concept", [])))


def _union(into: dict[str, set[str]], other: dict[str, set[str]]) -> None:
    for system, codes in other.items():
        into.setdefault(system, set()).update(codes)


def _intersect(parts: list[dict[str, set[str]]]) -> dict[str, set[str]]:
    result = {system: set(codes) for system, codes in parts[0].items()}
    for part in parts[1:]:
        result = {s: c & part[s] for s, c in result.items() if s in part}
    return result


# --------------------------------------------------------------------------- structure


def base_structures(structures: list[Json]) -> list[Json]:
    """Resources and complex datatypes as defined by the base spec (no profiles).

    ``Element`` is kept too: it is the type of a primitive's ``_name`` sibling, whose
    extensions may carry bound datatypes.
    """
    return [
        sd
        for sd in structures
        if (sd.get("derivation") == "specialization" or sd.get("id") == PRIMITIVE_EXTRAS)
        and sd.get("kind") in {"resource", "complex-type"}
    ]


def _type_codes(element: Json) -> list[str]:
    return [t["code"] for t in element.get("type", []) if not t["code"].startswith("http")]


def _json_keys(name: str, types: list[str]) -> list[tuple[str, str]]:
    """JSON property names for an element: ``value[x]`` becomes ``valueQuantity`` etc."""
    if not name.endswith("[x]"):
        return [(name, t) for t in types[:1]]
    stem = name[:-3]
    return [(stem + t[0].upper() + t[1:], t) for t in types]


class Edge(NamedTuple):
    """One JSON key of a node: its type, whether it holds an array, and its binding."""

    node: str
    key: str
    target: str
    repeats: bool
    url: str | None = None
    strength: str | None = None


def element_edges(sd: Json) -> Iterator[Edge]:
    """Yield an :class:`Edge` for every child element (and primitive ``_key``) of ``sd``."""
    for element in sd["snapshot"]["element"]:
        path: str = element["path"]
        if "." not in path:
            continue
        node, name = path.rsplit(".", 1)
        repeats = element.get("max") not in {"0", "1"}
        if "contentReference" in element:
            yield Edge(node, name, element["contentReference"].lstrip("#"), repeats)
            continue
        binding = element.get("binding") or {}
        for key, type_code in _json_keys(name, _type_codes(element)):
            target = path if type_code in {"BackboneElement", "Element"} else type_code
            yield Edge(node, key, target, repeats, binding.get("valueSet"), binding.get("strength"))
            if type_code[:1].islower():
                yield Edge(node, f"_{key}", PRIMITIVE_EXTRAS, repeats)


class Tables:
    """What ``build`` produces: the walk plan, the bindings and the expanded value sets."""

    def __init__(self) -> None:
        self.edges: dict[str, dict[str, str]] = {}
        self.repeating: set[str] = set()
        self.bindings: dict[str, str] = {}
        self.value_sets: dict[str, dict[str, set[str]]] = {}
        self.not_enumerable: dict[str, str] = {}
        self.resource_types: set[str] = set()

    def nodes(self) -> dict[str, dict[str, list[str]]]:
        """Per node, ``{type: [keys]}`` for the keys leading to a checked binding or resource.

        Grouped by type because most nodes repeat the same few (``Extension``, ``Element``).
        A key that holds a JSON array (``max`` > 1) is written with a ``*`` suffix.
        """
        checked = self.checked_paths()
        relevant = _relevant_nodes(self.edges, checked)
        nodes: dict[str, dict[str, list[str]]] = {}
        for node, children in sorted(self.edges.items()):
            if node not in relevant:
                continue
            grouped = nodes[node] = {}
            for key, target in sorted(children.items()):
                path = f"{node}.{key}"
                if path in checked or target in relevant:
                    grouped.setdefault(target, []).append(key + "*" * (path in self.repeating))
        return nodes

    def checked_paths(self) -> set[str]:
        return {path for path, url in self.bindings.items() if url in self.value_sets}

    def document(self) -> Json:
        """The JSON written to ``required_bindings.json``."""
        return {
            "fhirVersion": "4.0.1",
            "valueSets": {
                url: {system: sorted(codes) for system, codes in sorted(systems.items())}
                for url, systems in sorted(self.value_sets.items())
            },
            "notEnumerable": dict(sorted(self.not_enumerable.items())),
            "resourceTypes": sorted(self.resource_types),
            "bindings": dict(sorted(self.bindings.items())),
            "nodes": self.nodes(),
        }


def build(structures: list[Json], expander: Expander) -> Tables:
    """Collect every element edge and every required binding on a coded element."""
    tables = Tables()
    for sd in base_structures(structures):
        tables.edges.setdefault(sd["type"], {})
        if sd["kind"] == "resource":
            tables.resource_types.add(sd["type"])
        for edge in element_edges(sd):
            path = f"{edge.node}.{edge.key}"
            tables.edges.setdefault(edge.node, {})[edge.key] = edge.target
            if edge.repeats:
                tables.repeating.add(path)
            if edge.strength == "required" and edge.url and edge.target in CODED_TYPES:
                _add_binding(tables, expander, path, strip_version(edge.url))
    return tables


def _add_binding(tables: Tables, expander: Expander, path: str, url: str) -> None:
    tables.bindings[path] = url
    try:
        tables.value_sets[url] = expander.expand(url)
    except NotEnumerable as exc:
        tables.not_enumerable[url] = str(exc)


def _relevant_nodes(edges: dict[str, dict[str, str]], checked: set[str]) -> set[str]:
    """Nodes from which a checked binding or a nested resource is reachable (fixpoint)."""
    relevant = {RESOURCE_TYPE} | {path.rsplit(".", 1)[0] for path in checked}
    changed = True
    while changed:
        changed = False
        for node, children in edges.items():
            if node not in relevant and any(t in relevant for t in children.values()):
                relevant.add(node)
                changed = True
    return relevant


# --------------------------------------------------------------------------- main


def _report(tables: Tables, document: Json, n_vs: int, n_cs: int, added: int) -> None:
    checked = tables.checked_paths()
    print(f"read {n_vs} value sets and {n_cs} code systems ({added} only in valuesets.json)")
    print(
        f"{len(tables.bindings)} required bindings: {len(checked)} enforced, "
        f"{len(tables.bindings) - len(checked)} not enumerable (not checked)"
    )
    expanded, skipped = len(tables.value_sets), len(tables.not_enumerable)
    print(f"{expanded} value sets expanded, {skipped} not enumerable:")
    for url, reason in sorted(tables.not_enumerable.items()):
        paths = ", ".join(p for p, u in tables.bindings.items() if u == url)
        print(f"  {url}: {reason}\n    bound at {paths}")
    print(f"{len(document['nodes'])} walk nodes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--core", type=Path, default=DEFAULT_CORE)
    parser.add_argument("--valuesets", type=Path, default=DEFAULT_VALUESETS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    structures, value_sets, code_systems = load_core(args.core)
    added = merge_bundle(args.valuesets, value_sets, code_systems)
    tables = build(structures, Expander(value_sets, code_systems))
    document = tables.document()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    args.out.write_text(text + "\n", encoding="utf-8")
    _report(tables, document, len(value_sets), len(code_systems), added)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

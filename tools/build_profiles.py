"""Build the program's conformance resources in ``profiles/`` from their readable source.

The source (``profiles/source/*.yaml``) holds what a person edits: each profile's differential
in a compact form, the CodeSystems, ValueSets, OperationDefinitions and the Measure. This tool
expands it into FHIR JSON and computes every StructureDefinition's snapshot from the R4 core
base definitions (``hl7.fhir.r4.core-4.0.1.tgz``, read here at build time only), then writes
``profiles/index.html``. The output is committed; running the tool twice gives the same bytes
(``--check`` says whether the committed files are current).

Shorthands in a differential element (anything else is copied as FHIR):

* ``path: X.y:name`` declares the slice ``name`` of ``X.y``;
* ``slicing: pattern`` (discriminator pattern on ``$this``) or ``slicing: url`` (extensions);
* ``targets: [Patient, ivz-referral]`` is a Reference to those types or program profiles;
* ``types: [integer]`` restricts the type; ``extension: ivz-...`` types a slice of extensions;
* ``binding.valueSet`` and coded ``system`` values without ``://`` name program resources;
* ``constraint`` entries get ``severity: error`` and the profile as ``source``.

Usage::

    python tools/build_profiles.py [--core TGZ] [--check]
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"
SOURCE = PROFILES / "source"
DEFAULT_CORE = ROOT.parent / "shared" / "fhir-r4" / "hl7.fhir.r4.core-4.0.1.tgz"
CORE_SD = "http://hl7.org/fhir/StructureDefinition/"

#: ElementDefinition's own element order, used to write elements the way FHIR lists them.
ELEMENT_ORDER = [
    "id", "extension", "path", "representation", "sliceName", "sliceIsConstraining", "label",
    "code", "slicing", "short", "definition", "comment", "requirements", "alias", "min", "max",
    "base", "contentReference", "type", "defaultValue", "meaningWhenMissing", "orderMeaning",
    "fixed", "pattern", "example", "minValue", "maxValue", "maxLength", "condition",
    "constraint", "mustSupport", "isModifier", "isModifierReason", "isSummary", "binding",
    "mapping",
]  # fmt: skip
SLICINGS = {
    "pattern": {"discriminator": [{"type": "pattern", "path": "$this"}], "rules": "open"},
    "url": {"discriminator": [{"type": "value", "path": "url"}], "ordered": False, "rules": "open"},
}


class Program:
    """The shared metadata and canonical URLs of the program (``source/program.yaml``)."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.base: str = meta["base"]
        self.version: str = meta["version"]
        self.date: str = meta["date"]
        self.publisher: str = meta["publisher"]
        self.contact: str = meta["contact"]
        self.jurisdiction: str = meta["jurisdiction"]

    def url(self, resource_type: str, rid: str) -> str:
        return f"{self.base}/{resource_type}/{rid}"

    def header(self, resource_type: str, rid: str) -> dict[str, Any]:
        """The leading elements every conformance resource of the program carries."""
        return {
            "resourceType": resource_type,
            "id": rid,
            "url": self.url(resource_type, rid),
            "version": self.version,
        }

    def trailer(self) -> dict[str, Any]:
        return {
            "status": "active",
            "experimental": False,
            "date": self.date,
            "publisher": self.publisher,
            "contact": [{"name": self.contact}],
        }

    def jurisdictions(self) -> list[dict[str, Any]]:
        system = "urn:iso:std:iso:3166"
        return [{"coding": [{"system": system, "code": self.jurisdiction}]}]

    def system(self, value: str) -> str:
        return value if "://" in value else self.url("CodeSystem", value)

    def canonical_systems(self, value: Any) -> Any:
        """Expand program CodeSystem ids in ``system`` keys of a pattern or fixed value."""
        if isinstance(value, dict):
            return {
                k: self.system(v) if k == "system" else self.canonical_systems(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.canonical_systems(v) for v in value]
        return value


def pascal(rid: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in rid.replace("-", " ").split())


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def core_definitions(core: Path, types: set[str]) -> dict[str, dict[str, Any]]:
    """The base StructureDefinitions of ``types`` from the core package."""
    out: dict[str, dict[str, Any]] = {}
    with tarfile.open(core) as tar:
        for name in sorted(types):
            member = tar.extractfile(f"package/StructureDefinition-{name}.json")
            if member is None:
                raise SystemExit(f"{core} has no StructureDefinition {name}")
            out[name] = json.load(member)
    return out


# --------------------------------------------------------------------- StructureDefinitions


def ordered(element: dict[str, Any]) -> dict[str, Any]:
    """``element`` with its keys in ElementDefinition order (fixed[x]/pattern[x] by prefix)."""

    def rank(key: str) -> int:
        for index, name in enumerate(ELEMENT_ORDER):
            if key == name or (name in ("fixed", "pattern") and key.startswith(name)):
                return index
        raise SystemExit(f"unknown ElementDefinition key {key!r}")

    return {k: element[k] for k in sorted(element, key=rank)}


def merge_shared(source: dict[str, Any]) -> list[dict[str, Any]]:
    """The profile's elements, after those of its ``shared`` file (same path: merged)."""
    elements: list[dict[str, Any]] = []
    if "shared" in source:
        shared = load_yaml(SOURCE / "structuredefinitions" / f"{source['shared']}.yaml")
        elements = copy.deepcopy(shared["elements"])
    for own in source["elements"]:
        same = next((e for e in elements if e["path"] == own["path"]), None)
        if same is None:
            elements.append(copy.deepcopy(own))
            continue
        for key, value in own.items():
            if key == "constraint":
                same.setdefault("constraint", []).extend(value)
            else:
                same[key] = value
    return elements


def differential_element(
    program: Program, url: str, raw: dict[str, Any], is_root: bool
) -> dict[str, Any]:
    """One differential element from its source shorthand."""
    out: dict[str, Any] = {}
    path, _, slice_name = raw["path"].partition(":")
    out["id"] = raw["path"]
    out["path"] = path
    if slice_name:
        out["sliceName"] = slice_name
    for key, value in raw.items():
        if key == "path":
            continue
        if key == "slicing":
            out["slicing"] = copy.deepcopy(SLICINGS[value])
        elif key == "targets":
            profiles = [
                program.url("StructureDefinition", t) if t.startswith("ivz-") else CORE_SD + t
                for t in value
            ]
            out["type"] = [{"code": "Reference", "targetProfile": profiles}]
        elif key == "types":
            out["type"] = [{"code": t} for t in value]
        elif key == "extension":
            out["type"] = [
                {"code": "Extension", "profile": [program.url("StructureDefinition", value)]}
            ]
        elif key == "binding":
            binding = dict(value)
            binding["valueSet"] = program.url("ValueSet", binding["valueSet"])
            out["binding"] = {
                k: binding[k] for k in ("strength", "description", "valueSet") if k in binding
            }
        elif key == "constraint":
            out["constraint"] = [
                {
                    "key": c["key"],
                    "severity": "error",
                    "human": c["human"],
                    "expression": c["expression"],
                    "source": url,
                }
                for c in value
            ]
        elif key == "max":
            out["max"] = str(value)
        elif key.startswith(("pattern", "fixed")):
            out[key] = program.canonical_systems(value)
        else:
            out[key] = value
    if not is_root and out.get("max") != "0":
        out.setdefault("mustSupport", True)
    return ordered(out)


def snapshot(base: dict[str, Any], differential: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The base snapshot with the differential applied; slices follow their sliced element."""
    base_elements = base["snapshot"]["element"]
    by_id = {e["id"]: e for e in base_elements}
    elements = [copy.deepcopy(e) for e in base_elements]
    for diff in differential:
        if "sliceName" in diff:
            template = copy.deepcopy(by_id[diff["path"]])
            template.pop("slicing", None)
            merged = {**template, **diff}
            merged["constraint"] = template.get("constraint", []) + diff.get("constraint", [])
            if not merged["constraint"]:
                del merged["constraint"]
            path = diff["path"]
            last = max(
                i
                for i, e in enumerate(elements)
                if e["id"] == path or e["id"].startswith((path + ".", path + ":"))
            )
            elements.insert(last + 1, ordered(merged))
            continue
        index = next((i for i, e in enumerate(elements) if e["id"] == diff["id"]), None)
        if index is None:
            raise SystemExit(f"{diff['id']} is not an element of {base['type']}")
        target = elements[index]
        for key, value in diff.items():
            if key == "constraint":
                target["constraint"] = target.get("constraint", []) + value
            elif key.startswith(("fixed", "pattern")) or key == "type":
                for old in [k for k in target if k.startswith(("fixed", "pattern"))]:
                    del target[old]
                target[key] = value
            else:
                target[key] = value
        elements[index] = ordered(target)
    return elements


def structure_definition(
    program: Program, source: dict[str, Any], bases: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    rid, type_ = source["id"], source["type"]
    base = bases[type_]
    url = program.url("StructureDefinition", rid)
    raw = merge_shared(source)
    diff = [differential_element(program, url, e, e["path"] == type_) for e in raw]
    snap = snapshot(base, diff)
    order = {e["id"]: i for i, e in enumerate(snap)}
    diff.sort(key=lambda e: order[e["id"]])
    sd = program.header("StructureDefinition", rid)
    sd["name"] = pascal(rid)
    sd["title"] = source["title"]
    sd.update(program.trailer())
    sd["description"] = source["description"].strip()
    sd["jurisdiction"] = program.jurisdictions()
    sd["fhirVersion"] = "4.0.1"
    sd["kind"] = base["kind"]
    sd["abstract"] = False
    if "context" in source:
        sd["context"] = [{"type": "element", "expression": c} for c in source["context"]]
    sd["type"] = type_
    sd["baseDefinition"] = CORE_SD + type_
    sd["derivation"] = "constraint"
    sd["snapshot"] = {"element": snap}
    sd["differential"] = {"element": diff}
    return sd


# ------------------------------------------------------------------------------ terminology


def code_system(program: Program, src: dict[str, Any], value_sets: set[str]) -> dict[str, Any]:
    cs = program.header("CodeSystem", src["id"])
    cs["name"] = pascal(src["id"])
    cs["title"] = src["title"]
    cs.update(program.trailer())
    cs["description"] = src["description"].strip()
    cs["jurisdiction"] = program.jurisdictions()
    cs["caseSensitive"] = True
    if src["id"] in value_sets:
        cs["valueSet"] = program.url("ValueSet", src["id"])
    cs["content"] = "complete"
    cs["count"] = len(src["concepts"])
    cs["concept"] = [
        {"code": str(c["code"]), "display": c["display"], "definition": c["definition"]}
        for c in src["concepts"]
    ]
    return cs


def value_set(program: Program, src: dict[str, Any], systems: dict[str, Any]) -> dict[str, Any]:
    vs = program.header("ValueSet", src["id"])
    vs["name"] = pascal(src["id"])
    vs["title"] = src["title"]
    vs.update(program.trailer())
    vs["description"] = src["description"].strip()
    vs["jurisdiction"] = program.jurisdictions()
    vs["immutable"] = False
    includes: list[dict[str, Any]] = []
    for inc in src["include"]:
        system = program.system(inc["system"])
        out: dict[str, Any] = {"system": system}
        if "is-a" in inc:
            out["filter"] = [{"property": "concept", "op": "is-a", "value": inc["is-a"]}]
        if "concept" in inc:
            local = {c["code"]: c["display"] for c in systems.get(inc["system"], [])}
            concepts = []
            for c in inc["concept"]:
                if isinstance(c, str):
                    concepts.append({"code": c, "display": local[c]})
                else:
                    concepts.append({"code": str(c["code"]), "display": c["display"]})
            out["concept"] = concepts
        includes.append(out)
    vs["compose"] = {"include": includes}
    return vs


# ----------------------------------------------------------------- operations and measure


def search_parameter(program: Program, src: dict[str, Any]) -> dict[str, Any]:
    sp = program.header("SearchParameter", src["id"])
    sp["name"] = src["name"]
    sp["status"] = "active"
    sp["experimental"] = False
    sp["date"] = program.date
    sp["publisher"] = program.publisher
    sp["contact"] = [{"name": program.contact}]
    sp["description"] = src["description"].strip()
    sp["jurisdiction"] = program.jurisdictions()
    for key in ("code", "base", "type", "expression", "target"):
        if key in src:
            sp[key] = src[key]
    return sp


def operation_definition(program: Program, src: dict[str, Any]) -> dict[str, Any]:
    od = program.header("OperationDefinition", src["id"])
    od["name"] = src["name"]
    od["title"] = src["title"]
    od["status"] = "active"
    od["kind"] = "operation"
    od["experimental"] = False
    od["date"] = program.date
    od["publisher"] = program.publisher
    od["contact"] = [{"name": program.contact}]
    od["description"] = src["description"].strip()
    od["jurisdiction"] = program.jurisdictions()
    od["affectsState"] = src["affectsState"]
    od["code"] = src["code"]
    if "resource" in src:
        od["resource"] = src["resource"]
    for key in ("system", "type", "instance"):
        od[key] = src[key]
    od["parameter"] = [
        {
            k: p[k]
            for k in (
                "name", "use", "min", "max", "documentation", "type", "targetProfile", "binding",
            )
            if k in p
        }
        for p in src["parameter"]
    ]  # fmt: skip
    return od


def measure(program: Program, src: dict[str, Any]) -> dict[str, Any]:
    term = "http://terminology.hl7.org/CodeSystem/"
    m = program.header("Measure", src["id"])
    m["name"] = src["name"]
    m["title"] = src["title"]
    m.update(program.trailer())
    m["description"] = src["description"].strip()
    m["jurisdiction"] = program.jurisdictions()
    m["scoring"] = {"coding": [{"system": term + "measure-scoring", "code": src["scoring"]}]}
    m["type"] = [{"coding": [{"system": term + "measure-type", "code": src["type"]}]}]
    strat = src["stratifier"]
    stratifier = {
        "code": {"text": strat["code"]},
        "description": strat["description"],
        "criteria": {
            "description": strat["criteria"],
            "language": "text/cql",
            "expression": strat["name"],
        },
    }
    population = term + "measure-population"
    m["group"] = [
        {
            "code": {"text": g["code"]},
            "description": g["description"],
            "population": [
                {
                    "code": {"coding": [{"system": population, "code": "initial-population"}]},
                    "criteria": {
                        "description": g["criteria"],
                        "language": "text/cql",
                        "expression": g["name"],
                    },
                }
            ],
            "stratifier": [stratifier],
        }
        for g in src["groups"]
    ]
    return m


# ------------------------------------------------------------------------------- the index


def index_page(resources: dict[str, dict[str, Any]], examples: list[Path]) -> str:
    """A static HTML page listing every conformance resource and example (relative links)."""

    def row(cells: list[str]) -> str:
        return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    def link(name: str, text: str) -> str:
        return f'<a href="{html.escape(name)}">{html.escape(text)}</a>'

    sections: list[tuple[str, list[str], list[list[str]]]] = []
    groups: dict[str, list[list[str]]] = {}
    for name, res in sorted(resources.items()):
        rtype = res["resourceType"]
        if rtype == "StructureDefinition":
            kind = "Extensions" if res["type"] == "Extension" else "Profiles"
            cells = [link(name, res["id"]), html.escape(res["title"]), res["type"]]
        else:
            kind = {"CodeSystem": "CodeSystems", "ValueSet": "ValueSets"}.get(rtype, "Operations")
            if rtype == "Measure":
                kind = "Measures"
            cells = [link(name, res["id"]), html.escape(res.get("title", "")), rtype]
        cells.append(f"<code>{html.escape(res['url'])}</code>")
        cells.append(html.escape(res["description"].split(". ")[0].rstrip(".") + "."))
        groups.setdefault(kind, []).append(cells)
    head = ["id", "title", "type", "canonical URL", "summary"]
    for kind in ("Profiles", "Extensions", "CodeSystems", "ValueSets", "Operations", "Measures"):
        sections.append((kind, head, groups.get(kind, [])))
    example_rows = []
    for path in examples:
        doc = json.loads(path.read_text(encoding="utf-8"))
        claimed = ", ".join(p.rsplit("/", 1)[-1] for p in doc.get("meta", {}).get("profile", []))
        example_rows.append(
            [link(f"examples/{path.name}", path.stem), doc["resourceType"], html.escape(claimed)]
        )
    sections.append(("Examples", ["file", "type", "profile"], example_rows))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="de">',
        '<head><meta charset="utf-8"><title>IVZ FHIR profiles 1.0.0</title>',
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}</style>",
        "</head>",
        "<body>",
        "<h1>IVZ second-opinion program: FHIR R4 conformance resources (1.0.0)</h1>",
        "<p>Canonical base <code>https://ivz-bridge.example/fhir</code>. Generated by "
        "<code>tools/build_profiles.py</code> from <code>profiles/source/</code>; "
        "the server installs them at start-up and validates resources that claim a profile in "
        "<code>meta.profile</code> (<code>POST /fhir/{type}/$validate</code>).</p>",
    ]
    for title, header, rows in sections:
        parts.append(f"<h2>{title}</h2>")
        parts.append("<table>")
        parts.append("<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>")
        parts.extend(row(r) for r in rows)
        parts.append("</table>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------- build


def build(core: Path) -> dict[str, str]:
    """Every generated file as ``{path relative to profiles/: text}``."""
    program = Program(load_yaml(SOURCE / "program.yaml"))
    sd_sources = [
        load_yaml(p)
        for p in sorted((SOURCE / "structuredefinitions").glob("*.yaml"))
        if not p.name.startswith("_")
    ]
    bases = core_definitions(core, {s["type"] for s in sd_sources})
    resources: dict[str, dict[str, Any]] = {}
    for src in sd_sources:
        resources[f"StructureDefinition-{src['id']}.json"] = structure_definition(
            program, src, bases
        )
    terms = load_yaml(SOURCE / "terminology.yaml")
    vs_ids = {v["id"] for v in terms["valuesets"]}
    systems = {c["id"]: c["concepts"] for c in terms["codesystems"]}
    for src in terms["codesystems"]:
        resources[f"CodeSystem-{src['id']}.json"] = code_system(program, src, vs_ids)
    for src in terms["valuesets"]:
        resources[f"ValueSet-{src['id']}.json"] = value_set(program, src, systems)
    for src in load_yaml(SOURCE / "operations.yaml")["operations"]:
        resources[f"OperationDefinition-{src['id']}.json"] = operation_definition(program, src)
    for src in load_yaml(SOURCE / "searchparameters.yaml")["searchparameters"]:
        resources[f"SearchParameter-{src['id']}.json"] = search_parameter(program, src)
    m = measure(program, load_yaml(SOURCE / "measure.yaml"))
    resources[f"Measure-{m['id']}.json"] = m
    out = {
        name: json.dumps(res, indent=2, ensure_ascii=False) + "\n"
        for name, res in sorted(resources.items())
    }
    out["index.html"] = index_page(resources, sorted((PROFILES / "examples").glob("*.json")))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--core", type=Path, default=DEFAULT_CORE)
    parser.add_argument("--check", action="store_true", help="only compare with profiles/")
    args = parser.parse_args(argv)
    files = build(args.core)
    stale = [n for n, text in files.items() if _read(PROFILES / n) != text]
    if args.check:
        for name in stale:
            print(f"out of date: profiles/{name}", file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        (PROFILES / name).write_text(files[name], encoding="utf-8")
    print(f"{len(files)} files, {len(stale)} written")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


if __name__ == "__main__":
    raise SystemExit(main())

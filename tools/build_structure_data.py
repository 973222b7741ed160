"""Generate ``fhir_server/data/structure.json`` from the official FHIR R4 core package.

The server must not read the spec package at run time, so this script distils the
StructureDefinition snapshots into the little that JSON/XML conversion and ``_summary``
need: for every resource, datatype and backbone element, its children in definition order.

Output layout (all lists keep StructureDefinition order)::

    {
      "fhirVersion": "4.0.1",
      "resourceTypes": ["Account", ...],            # concrete resource types
      "primitiveTypes": {"boolean": {"json": "boolean", "regex": "true|false"}, ...},
      "types": {
        "Patient": [[name, type, min, max, isSummary, isXmlAttr], ...],
        "Patient.contact": [...],                    # backbone elements by path
        ...
      }
    }

``type`` is a type code (``"string"``, ``"HumanName"``, ``"Resource"``, ``"xhtml"``), the
path of a backbone element (``"Patient.contact"``; contentReference elements point to
the referenced path, e.g. ``Questionnaire.item.item`` -> ``"Questionnaire.item"``), or a
list of type codes for a choice element ``value[x]`` (its name is stored without ``[x]``).
``primitiveTypes[...].json`` is how the value appears in JSON: boolean, integer, decimal
or string; ``regex`` (when present) is the spec's value pattern translated to Python.

Usage: ``python tools/build_structure_data.py [core-package.tgz] [--out PATH]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_PACKAGE = Path("/work/shared/fhir-r4/hl7.fhir.r4.core-4.0.1.tgz")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "fhir_server" / "data" / "structure.json"
GZIP_THRESHOLD = 1_000_000

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
SYSTEM_TYPE_PREFIX = "http://hl7.org/fhirpath/System."
# Primitive types whose JSON form is not a string, keyed by the root of their derivation.
JSON_KINDS = {"boolean": "boolean", "integer": "integer", "decimal": "decimal"}
# XML Schema's \s is exactly these four characters; Python's is much wider (e.g. U+00A0).
XSD_SPACE = " \\t\\n\\r"

SD = dict[str, Any]


def iter_structure_definitions(package: Path) -> Iterator[SD]:
    """Yield the base (non-profile) StructureDefinitions of the package."""
    with tarfile.open(package, "r:gz") as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            if not (member.isfile() and name.startswith("StructureDefinition-")):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            sd = json.load(handle)
            if sd.get("resourceType") != "StructureDefinition":
                continue
            if sd.get("kind") == "logical" or sd.get("derivation") == "constraint":
                continue
            yield sd


def type_code(type_entry: SD) -> str:
    """Return the FHIR type code, mapping FHIRPath system types (``.id``) to FHIR ones."""
    code: str = type_entry["code"]
    if code.startswith(SYSTEM_TYPE_PREFIX):
        for ext in type_entry.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT:
                return str(ext["valueUrl"])
        return code[len(SYSTEM_TYPE_PREFIX) :].lower()
    return code


def element_entry(element: SD, has_children: bool) -> list[Any]:
    """Compact ``[name, type, min, max, isSummary, isXmlAttr]`` row for one child element."""
    path: str = element["path"]
    name = path.rsplit(".", 1)[-1]
    kind: str | list[str]
    if "contentReference" in element:
        kind = element["contentReference"].split("#", 1)[-1]
    elif has_children:
        kind = path
    else:
        codes = list(dict.fromkeys(type_code(t) for t in element.get("type", [])))
        if name.endswith("[x]"):
            name, kind = name[:-3], codes
        elif len(codes) == 1:
            kind = codes[0]
        else:
            raise ValueError(f"{path}: expected exactly one type, got {codes}")
    return [
        name,
        kind,
        int(element.get("min", 0)),
        str(element.get("max", "*")),
        1 if element.get("isSummary") else 0,
        1 if "xmlAttr" in element.get("representation", []) else 0,
    ]


def children_by_parent(sd: SD) -> dict[str, list[list[Any]]]:
    """Map each complex element path of one StructureDefinition to its child rows."""
    elements = [e for e in sd["snapshot"]["element"] if "sliceName" not in e]
    paths = [e["path"] for e in elements]
    parents = {p.rsplit(".", 1)[0] for p in paths if "." in p}
    result: dict[str, list[list[Any]]] = {paths[0]: []}
    for element in elements[1:]:
        path = element["path"]
        if element.get("max") == "0":
            continue
        parent = path.rsplit(".", 1)[0]
        result.setdefault(parent, []).append(element_entry(element, path in parents))
        if path in parents:
            result.setdefault(path, [])
    return result


def xsd_regex_to_python(regex: str) -> str | None:
    """Translate the spec's XML Schema pattern to Python, or None if it cannot be exact.

    Only ``\\s``/``\\S`` differ in meaning; inside a character class ``\\S`` cannot be
    expressed, and such patterns (string, markdown) only demand a non-empty value.
    """
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(regex):
        char = regex[i]
        if char == "\\" and i + 1 < len(regex):
            escape = regex[i : i + 2]
            if escape == "\\s":
                out.append(XSD_SPACE if in_class else f"[{XSD_SPACE}]")
            elif escape == "\\S":
                if in_class:
                    return None
                out.append(f"[^{XSD_SPACE}]")
            else:
                out.append(escape)
            i += 2
            continue
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        out.append(char)
        i += 1
    return "".join(out)


def primitive_info(sds: dict[str, SD]) -> dict[str, dict[str, str]]:
    """JSON representation and value pattern of every primitive type."""
    result: dict[str, dict[str, str]] = {}
    for name, sd in sorted(sds.items()):
        if sd["kind"] != "primitive-type":
            continue
        root = name
        while root not in JSON_KINDS and root in sds:
            base = sd_base(sds[root])
            if base not in sds or sds[base]["kind"] != "primitive-type":
                break
            root = base
        info = {"json": JSON_KINDS.get(root, "string")}
        regex = value_regex(sd)
        if regex is not None and name != "base64Binary":  # the spec's pattern backtracks
            info["regex"] = regex
        result[name] = info
    return result


def sd_base(sd: SD) -> str:
    return str(sd.get("baseDefinition", "")).rsplit("/", 1)[-1]


def value_regex(sd: SD) -> str | None:
    """The Python-compatible regex of a primitive's ``.value`` element, if any."""
    for element in sd["snapshot"]["element"]:
        if not element["path"].endswith(".value"):
            continue
        for type_entry in element.get("type", []):
            for ext in type_entry.get("extension", []):
                if ext.get("url") == REGEX_EXT:
                    return xsd_regex_to_python(ext["valueString"])
    return None


def build(package: Path) -> dict[str, Any]:
    sds = {sd["type"]: sd for sd in iter_structure_definitions(package)}
    types: dict[str, list[list[Any]]] = {}
    for name in sorted(sds):
        sd = sds[name]
        if sd["kind"] in ("resource", "complex-type"):
            types.update(children_by_parent(sd))
    resource_types = sorted(
        name for name, sd in sds.items() if sd["kind"] == "resource" and not sd.get("abstract")
    )
    return {
        "fhirVersion": next(iter(sds.values())).get("fhirVersion", ""),
        "resourceTypes": resource_types,
        "primitiveTypes": primitive_info(sds),
        "types": types,
    }


def write(data: dict[str, Any], out: Path) -> Path:
    """Write compact JSON, gzipped when large; remove the stale other variant."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    gz = out.with_name(out.name + ".gz")
    out.parent.mkdir(parents=True, exist_ok=True)
    if len(payload) > GZIP_THRESHOLD:
        gz.write_bytes(gzip.compress(payload, mtime=0))
        out.unlink(missing_ok=True)
        return gz
    out.write_bytes(payload)
    gz.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("package", nargs="?", type=Path, default=DEFAULT_PACKAGE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    data = build(args.package)
    path = write(data, args.out)
    print(
        f"wrote {path} ({path.stat().st_size} bytes): {len(data['resourceTypes'])} resource "
        f"types, {len(data['types'])} structures, {len(data['primitiveTypes'])} primitives"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

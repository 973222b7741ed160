"""Build ``fhir_server/data/search-parameters.json.gz`` from the official R4 search parameters.

The server must not read the spec at run time, so this keeps the 1,378 standard
SearchParameter resources with only the elements search uses (code, base, type, expression,
target, component, modifier, comparator...) and drops contacts, XPath, narrative and
extensions. The entries stay valid SearchParameter resources, so the registry loads them the
same way it registers a custom one. The output is deterministic (sorted, gzip mtime 0).

Usage::

    python tools/build_search_data.py [--source JSON] [--out JSON.GZ]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "fhir-r4" / "search-parameters.json"
DEFAULT_OUT = ROOT / "fhir_server" / "data" / "search-parameters.json.gz"

#: SearchParameter elements kept, in output order.
KEPT = (
    "resourceType",
    "id",
    "url",
    "version",
    "name",
    "status",
    "description",
    "code",
    "base",
    "type",
    "expression",
    "target",
    "multipleOr",
    "multipleAnd",
    "comparator",
    "modifier",
    "chain",
    "component",
)


def trim(resource: dict[str, Any]) -> dict[str, Any]:
    """The kept elements of one SearchParameter (components keep definition + expression)."""
    out = {key: resource[key] for key in KEPT if key in resource}
    if "component" in out:
        out["component"] = [
            {"definition": c["definition"], "expression": c["expression"]} for c in out["component"]
        ]
    return out


def build(source: Path) -> dict[str, Any]:
    bundle = json.loads(source.read_text(encoding="utf-8"))
    params = [
        trim(entry["resource"])
        for entry in bundle.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == "SearchParameter"
    ]
    params.sort(key=lambda p: str(p["url"]))
    return {"fhirVersion": "4.0.1", "source": source.name, "searchParameters": params}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    data = build(args.source)
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    args.out.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    count, size = len(data["searchParameters"]), args.out.stat().st_size
    print(f"{args.out}: {count} search parameters, {size} bytes")
    report(data["searchParameters"])


def report(definitions: list[dict[str, Any]]) -> None:
    """Compile every definition as the server will, and list what does not compile."""
    sys.path.insert(0, str(ROOT))
    from fhir_server.search.registry import Registry

    registry = Registry(definitions)
    compiled = sum(
        p.compiled is not None
        for t in registry.resource_types()
        for p in registry.params_for(t).values()
    )
    print(f"compiled {compiled} parameter/type pairs; not registered: {len(registry.problems)}")
    for problem in registry.problems:
        print(f"  {problem.url} ({problem.resource_type}): {problem.reason}")
    unindexed = sorted({d["code"] for d in definitions if not d.get("expression")})
    print(f"registered without expression (not indexed): {', '.join(unindexed)}")


if __name__ == "__main__":
    main()

"""Narrative XHTML rules (invariants txt-1, txt-2): well-formed, basic HTML only, no scripts.

Narratives are shown by EHRs to people; a stored ``<script>`` or ``onclick`` would be a
cross-site scripting hole in every viewer downstream, so they are refused on write.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lxml import etree

from fhir_server.fhir.outcomes import Issue

XHTML = "http://www.w3.org/1999/xhtml"

#: txt-1: the basic HTML 4.0 formatting elements, a, img and tables.
ALLOWED = frozenset(
    [
        "p",
        "br",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "span",
        "b",
        "em",
        "i",
        "strong",
        "small",
        "big",
        "tt",
        "dfn",
        "q",
        "var",
        "abbr",
        "acronym",
        "cite",
        "blockquote",
        "hr",
        "address",
        "bdo",
        "kbd",
        "sub",
        "sup",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "pre",
        "table",
        "caption",
        "colgroup",
        "col",
        "thead",
        "tr",
        "tfoot",
        "tbody",
        "th",
        "td",
        "code",
        "samp",
        "img",
        "map",
        "area",
        "s",
        "u",
        "font",
        "center",
    ]
)

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, dtd_validation=False
)


def _narratives(resource: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every ``text.div``: a resource's own, its contained ones' and bundled resources'."""
    if not isinstance(resource, dict):
        return
    text = resource.get("text")
    if isinstance(text, dict) and "div" in text:
        yield f"{path}.text.div", text["div"]
    for key, inner in _NESTED.get(str(resource.get("resourceType")), (("contained", None),)):
        items = resource.get(key)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            child = item.get(inner) if inner and isinstance(item, dict) else item
            where = f"{path}.{key}[{index}]" + (f".{inner}" if inner else "")
            yield from _narratives(child, where)


#: Where whole resources nest inside a resource: (list element, key of the resource in it).
_NESTED: dict[str, tuple[tuple[str, str | None], ...]] = {
    "Bundle": (("entry", "resource"),),
    "Parameters": (("parameter", "resource"),),
}


def check_narratives(resource: dict[str, Any]) -> list[Issue]:
    """Issues for every narrative that is not safe, well-formed XHTML."""
    issues = []
    for where, div in _narratives(resource, str(resource.get("resourceType"))):
        problem = _problem(div)
        if problem:
            issues.append(Issue("invariant", f"Narrative {problem} ({where})", expression=(where,)))
    return issues


def _problem(div: Any) -> str | None:
    if not isinstance(div, str) or "<!DOCTYPE" in div.upper() or "<!ENTITY" in div.upper():
        return "must be an XHTML string without DOCTYPE or entity declarations"
    try:
        root = etree.fromstring(div.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        return f"is not well-formed XHTML: {exc.msg}"
    if root.tag != f"{{{XHTML}}}div":
        return f"must be a <div> in namespace {XHTML}"
    for element in root.iter():
        if not isinstance(element.tag, str):
            if isinstance(element, etree._ProcessingInstruction):
                return "must not contain processing instructions"
            continue
        qname = etree.QName(element)
        if qname.namespace != XHTML or qname.localname not in ALLOWED:
            return f"must not contain <{qname.localname}> (txt-1: basic HTML only)"
        for name, raw in element.attrib.items():
            local = etree.QName(name).localname.lower()
            value = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            if local.startswith("on"):
                return f"must not contain event attribute '{local}' (txt-1)"
            if local in ("href", "src") and value.strip().lower().startswith(
                ("javascript:", "vbscript:", "data:text")
            ):
                return f"must not contain a script URL in '{local}'"
    return None

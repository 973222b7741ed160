"""FHIR R4 XML <-> JSON-shaped dict conversion (http://hl7.org/fhir/R4/xml.html).

The dict side is the resource as parsed from FHIR JSON with decimals as ``Decimal``.
Element order, repetition, attributes (``Element.id``, ``Extension.url``) and types all
come from the generated structure data, so every resource type works the same way.

Parsing treats the input as hostile: no DTDs, no entity expansion, no network, libxml2's
size and depth limits left on. Every problem surfaces as :class:`XmlFormatError` naming
the offending element path, ready for an OperationOutcome.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from operator import attrgetter
from typing import Any, cast

from lxml import etree

from fhir_server.fhir.structure import ElementInfo, TypeInfo, resource_types, type_info

__all__ = ["FHIR_NS", "XHTML_NS", "XmlFormatError", "resource_to_xml", "xml_to_resource"]

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
_XHTML_NSMAP: Any = {None: XHTML_NS}  # lxml-stubs do not allow the default-namespace key
_DIV_TAG = f"{{{XHTML_NS}}}div"
_XML_SPACE = " \t\r\n"
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # FHIR integers are 32-bit signed
_BY_INDEX = attrgetter("index")


class XmlFormatError(ValueError):
    """The XML (or the dict to serialise) is not valid FHIR XML; ``expression`` locates it."""

    def __init__(self, message: str, expression: str = "") -> None:
        super().__init__(f"{message} (at {expression})" if expression else message)
        self.message = message
        self.expression = expression


@dataclass(frozen=True, slots=True)
class _XmlType:
    """XML view of a TypeInfo: children by qualified tag, attributes by name."""

    info: TypeInfo
    by_tag: Mapping[object, ElementInfo]  # keyed by lxml tag ("{ns}name")
    tags: Mapping[str, str]  # JSON name -> qualified tag
    attributes: Mapping[str, ElementInfo]


@cache
def _xml_type(name: str) -> _XmlType:
    info = type_info(name)
    tags: dict[str, str] = {}
    attributes: dict[str, ElementInfo] = {}
    for element in info.elements:
        if element.xml_attribute:
            attributes[element.name] = element
        else:
            namespace = XHTML_NS if element.kind == "xhtml" else FHIR_NS
            tags[element.name] = f"{{{namespace}}}{element.name}"
    by_tag: dict[object, ElementInfo] = {tag: info.by_name[name] for name, tag in tags.items()}
    return _XmlType(info=info, by_tag=by_tag, tags=tags, attributes=attributes)


@cache
def _resource_tags() -> Mapping[str, str]:
    return {f"{{{FHIR_NS}}}{name}": name for name in resource_types()}


# --------------------------------------------------------------------------- parsing


class _Parsers(threading.local):
    """One parser per thread: an lxml parser holds per-parse state and error logs."""

    def __init__(self) -> None:
        self.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=False,
            remove_pis=True,
            collect_ids=False,
        )


_PARSERS = _Parsers()


def _parse(data: bytes, what: str, expression: str) -> etree._Element:
    """Parse untrusted XML, refusing any DOCTYPE (the vehicle of XXE and entity bombs)."""
    if b"<!DOCTYPE" in data:  # fast path; the docinfo check below covers other encodings
        raise XmlFormatError(f"{what} must not contain a DOCTYPE", expression)
    try:
        root = etree.fromstring(data, _PARSERS.parser)
    except etree.XMLSyntaxError as exc:
        raise XmlFormatError(f"{what} is not well-formed XML: {exc}", expression) from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XmlFormatError(f"{what} must not contain a DOCTYPE", expression)
    return root


def xml_to_resource(data: bytes | str) -> dict[str, Any]:
    """Parse a FHIR XML resource into the dict its FHIR JSON form would parse to.

    Decimals become ``Decimal``, integer types ``int``, booleans ``bool``, all else
    ``str``; Narrative.div becomes the XHTML string. Raises XmlFormatError.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    root = _parse(data, "The document", "")
    try:
        return _read_resource(root, "")
    except RecursionError:
        raise XmlFormatError("The document is nested too deeply", "") from None


def _local(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _read_resource(elem: etree._Element, path: str) -> dict[str, Any]:
    tag = elem.tag
    name = _resource_tags().get(tag) if isinstance(tag, str) else None
    if name is None:
        namespace, local = _local(str(tag))
        where = f"{path}.{local}" if path else local
        if namespace != FHIR_NS:
            raise XmlFormatError(_namespace_message(local, namespace), where)
        raise XmlFormatError(f"Unknown resource type '{local}'", where)
    resource: dict[str, Any] = {"resourceType": name}
    xml_type = _xml_type(name)
    _read_attributes(elem, xml_type, resource, path or name)
    _read_children(elem, xml_type, resource, path or name)
    return resource


def _namespace_message(local: str, namespace: str) -> str:
    if not namespace:
        return f"Element '{local}' has no namespace; FHIR elements must be in '{FHIR_NS}'"
    return f"Element '{local}' is in namespace '{namespace}', expected '{FHIR_NS}'"


def _check_text(text: str | None, path: str) -> None:
    if text and text.strip(_XML_SPACE):
        raise XmlFormatError(f"Unexpected text content {text.strip()[:40]!r}", path)


def _read_attributes(
    elem: etree._Element, xml_type: _XmlType, out: dict[str, Any], path: str
) -> None:
    for name, text in _attributes(elem).items():
        element = xml_type.attributes.get(name)
        if element is not None:
            out[name] = _parse_value(element, text, path)
        elif not name.startswith("{"):  # foreign-namespace attributes (xsi:...) are ignored
            raise XmlFormatError(f"Unknown attribute '{name}'", path)


def _read_children(
    elem: etree._Element, xml_type: _XmlType, out: dict[str, Any], path: str
) -> None:
    """Read child elements in order into ``out``, enforcing order and cardinality."""
    _check_text(elem.text, path)
    by_tag = xml_type.by_tag
    last: ElementInfo | None = None
    count = 0
    repeated: dict[str, tuple[list[Any], list[Any]]] = {}
    for child in elem:
        _check_text(child.tail, path)
        element = by_tag.get(child.tag)
        if element is None:
            if _is_comment(child):
                continue
            raise _unknown_node(child, xml_type, path)
        if element is last:
            count += 1
            if not element.repeats:
                raise XmlFormatError(
                    f"Element '{element.name}' must not repeat", f"{path}.{element.name}"
                )
        else:
            if last is not None and element.index <= last.index:
                raise _order_error(last, element, path)
            last, count = element, 0
        if element.kind == "primitive":
            value, extras = _read_primitive(child, element, path, count)
            if element.repeats:
                values, companions = repeated.setdefault(element.name, ([], []))
                values.append(value)
                companions.append(extras)
            else:
                if value is not None:
                    out[element.name] = value
                if extras is not None:
                    out["_" + element.name] = extras
        elif element.repeats:
            out.setdefault(element.name, []).append(
                _read_element(child, element, f"{path}.{element.name}[{count}]")
            )
        else:
            out[element.name] = _read_element(child, element, f"{path}.{element.name}")
    for name, (values, companions) in repeated.items():
        if any(v is not None for v in values):
            out[name] = values
        if any(c is not None for c in companions):
            out["_" + name] = companions


def _item_path(path: str, element: ElementInfo, count: int) -> str:
    """FHIRPath-like location of one occurrence, built only when reporting an error."""
    return f"{path}.{element.name}[{count}]" if element.repeats else f"{path}.{element.name}"


def _unknown_node(child: etree._Element, xml_type: _XmlType, path: str) -> XmlFormatError:
    """Say precisely why a child is not accepted: namespace, attribute-only or unknown."""
    tag = child.tag
    if not isinstance(tag, str):
        return XmlFormatError("Unexpected XML node (entity reference?)", path)
    namespace, local = _local(tag)
    where = f"{path}.{local}"
    expected = xml_type.tags.get(local)
    if expected is not None:
        expected_namespace = _local(expected)[0]
        message = f"Element '{local}' must be in namespace '{expected_namespace}'"
        return XmlFormatError(f"{message}, not '{namespace}'" if namespace else message, where)
    if local in xml_type.attributes and namespace == FHIR_NS:
        return XmlFormatError(f"'{local}' must be an XML attribute here, not an element", where)
    if namespace != FHIR_NS:
        return XmlFormatError(_namespace_message(local, namespace), where)
    return XmlFormatError(f"Unknown element '{local}'", where)


def _order_error(last: ElementInfo, element: ElementInfo, path: str) -> XmlFormatError:
    """Elements must follow definition order, and a choice allows one variant."""
    where = f"{path}.{element.name}"
    if element.index == last.index:
        return XmlFormatError(
            f"Only one of '{last.name}' and '{element.name}' may be present", where
        )
    return XmlFormatError(
        f"Element '{element.name}' is out of order: it must come before '{last.name}'", where
    )


def _read_primitive(
    elem: etree._Element, element: ElementInfo, path: str, count: int
) -> tuple[Any, dict[str, Any] | None]:
    """Return the value and the JSON ``_name`` companion (id/extension) of a primitive."""
    if len(elem.attrib) == 1 and len(elem) == 0 and elem.text is None:
        text = elem.get("value")
        if text is not None:  # the common case: <name value="..."/>
            return _parse_value(element, text, path, count), None
    value: Any = None
    extras: dict[str, Any] = {}
    for name, text in _attributes(elem).items():
        if name == "value":
            value = _parse_value(element, text, path, count)
        elif name == "id":
            extras["id"] = text
        elif not name.startswith("{"):
            raise XmlFormatError(f"Unknown attribute '{name}'", _item_path(path, element, count))
    _read_children(elem, _xml_type("Element"), extras, _item_path(path, element, count))
    if value is None and not extras:
        raise XmlFormatError(
            f"Element '{element.name}' has no value and no extension",
            _item_path(path, element, count),
        )
    return value, extras or None


def _parse_value(element: ElementInfo, text: str, path: str, count: int = 0) -> Any:
    """Convert a value attribute to its JSON-side Python type, checking the spec's regex.

    ``path`` is the parent's path; the element's own is only built for an error.
    """
    pattern = element.pattern
    if text and (pattern is None or pattern.fullmatch(text) is not None):
        kind = element.json_kind
        if kind == "string":
            return text
        if kind == "boolean":
            return text == "true"
        try:
            if kind == "decimal":
                return Decimal(text)
            if len(text) <= 11 and _INT_MIN <= (number := int(text)) <= _INT_MAX:
                return number
        except (ValueError, InvalidOperation):
            pass
        else:
            raise XmlFormatError(
                f"{element.type} value {text[:60]!r} is outside the 32-bit range",
                _item_path(path, element, count),
            )
    where = _item_path(path, element, count)
    if not text:
        raise XmlFormatError(f"Element '{element.name}' has an empty value", where)
    raise XmlFormatError(f"Invalid {element.type} value {text[:60]!r}", where)


def _read_element(elem: etree._Element, element: ElementInfo, path: str) -> Any:
    """Read a complex element, a wrapped resource or a Narrative div."""
    if element.kind == "xhtml":
        return _div_text(elem)
    if element.kind == "resource":
        return _read_wrapped_resource(elem, path)
    xml_type = _xml_type(element.type)
    item: dict[str, Any] = {}
    _read_attributes(elem, xml_type, item, path)
    _read_children(elem, xml_type, item, path)
    if not item:
        raise XmlFormatError(f"Element '{element.name}' is empty", path)
    return item


def _read_wrapped_resource(elem: etree._Element, path: str) -> dict[str, Any]:
    """``<contained><Patient>...</Patient></contained>``: exactly one resource inside."""
    _check_text(elem.text, path)
    if any(not name.startswith("{") for name in _attributes(elem)):
        raise XmlFormatError("A resource container element must not have attributes", path)
    children = [child for child in elem if not _is_comment(child)]
    for child in elem:
        _check_text(child.tail, path)
    if len(children) != 1:
        raise XmlFormatError("Expected exactly one resource element", path)
    return _read_resource(children[0], path)


def _div_text(elem: etree._Element) -> str:
    """Serialise the div with only the XHTML default namespace declared, as JSON needs."""
    if elem.prefix is not None or elem.nsmap != {None: XHTML_NS}:
        elem = _copy_xhtml(elem)
    return etree.tostring(elem, encoding="unicode", with_tail=False)


def _copy_xhtml(source: etree._Element) -> etree._Element:
    """Rebuild an element tree so unused or prefixed namespace declarations disappear."""
    copy = etree.Element(source.tag, attrib=_attributes(source), nsmap=_XHTML_NSMAP)
    _copy_content(source, copy)
    return copy


def _copy_content(source: etree._Element, target: etree._Element) -> None:
    target.text = source.text
    for child in source:
        new: etree._Element
        if _is_comment(child):
            new = etree.Comment(child.text)
            target.append(new)
        else:
            new = etree.SubElement(target, child.tag, attrib=_attributes(child))
            _copy_content(child, new)
        new.tail = child.tail


def _attributes(elem: etree._Element) -> dict[str, str]:
    """lxml returns ``str`` names and values on Python 3; the stubs say ``str | bytes``."""
    return cast("dict[str, str]", dict(elem.attrib))


def _is_comment(node: etree._Element) -> bool:
    return cast(object, node.tag) is etree.Comment


# ----------------------------------------------------------------------- serialising

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_ROOT_NS = f' xmlns="{FHIR_NS}"'
# Characters needing care in an attribute value; the second set cannot appear in XML 1.0.
_ATTR_SPECIAL = re.compile('[&<>"\x00-\x1f\ud800-\udfff\ufffe\uffff]')
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ATTR_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


def resource_to_xml(resource: Mapping[str, Any], pretty: bool = False) -> bytes:
    """Serialise a FHIR resource dict (JSON form) as UTF-8 FHIR XML with a declaration.

    Narrative divs are copied verbatim after a well-formedness check. Raises
    XmlFormatError when the dict is not FHIR JSON (unknown element, wrong value type,
    malformed div): silently dropping data would be worse.
    """
    writer = _XmlWriter(pretty)
    try:
        writer.resource(resource, 0, "", root=True)
    except RecursionError:
        raise XmlFormatError("The resource is nested too deeply", "") from None
    return "".join(writer.parts).encode("utf-8")


class _XmlWriter:
    """Builds the XML text directly: several times faster than an lxml tree."""

    def __init__(self, pretty: bool) -> None:
        self.pretty = pretty
        self.parts: list[str] = [_DECLARATION if pretty else _DECLARATION + "\n"]

    def pad(self, depth: int) -> str:
        return "\n" + "  " * depth if self.pretty else ""

    def resource(self, resource: Any, depth: int, path: str, root: bool = False) -> None:
        name = resource.get("resourceType") if isinstance(resource, Mapping) else None
        if name not in resource_types():
            raise XmlFormatError(f"Not a known resource type: {name!r:.60}", path or str(name))
        attrs = _ROOT_NS if root else ""
        self.object(name, resource, _xml_type(name), depth, path or name, attrs, "resourceType")

    def object(
        self,
        tag: str,
        obj: Any,
        xml_type: _XmlType,
        depth: int,
        path: str,
        attrs: str = "",
        skip: str = "",
    ) -> None:
        """Write ``<tag attrs>children</tag>``; ``attrs`` go after the object's own."""
        elements = _present_elements(obj, xml_type, path, skip)
        head = f"{self.pad(depth)}<{tag}"
        children = []
        for element in elements:
            if not element.xml_attribute:
                children.append(element)
            elif element.name in obj and "_" + element.name not in obj:
                head += _value_attribute(element.name, element, obj[element.name], path, 0)
            else:
                message = f"'{element.name}' is an XML attribute and cannot carry extensions"
                raise XmlFormatError(message, f"{path}._{element.name}")
        if not children:
            self.parts.append(f"{head}{attrs}/>")
            return
        self.parts.append(f"{head}{attrs}>")
        for element in children:
            self.element(element, obj, depth + 1, path)
        self.parts.append(f"{self.pad(depth)}</{tag}>")

    def element(self, element: ElementInfo, obj: Mapping[str, Any], depth: int, path: str) -> None:
        name = element.name
        if element.kind == "primitive":
            self.primitives(element, obj.get(name), obj.get("_" + name), depth, path)
            return
        for index, item in enumerate(_as_list(obj[name], element, path)):
            item_path = _item_path(path, element, index)
            if element.kind == "xhtml":
                self.parts.append(self.pad(depth) + _checked_div(item, item_path))
            elif element.kind == "resource":
                self.parts.append(f"{self.pad(depth)}<{name}>")
                self.resource(item, depth + 1, item_path)
                self.parts.append(f"{self.pad(depth)}</{name}>")
            else:
                self.object(name, item, _xml_type(element.type), depth, item_path)

    def primitives(
        self, element: ElementInfo, value: Any, extras: Any, depth: int, path: str
    ) -> None:
        """Write ``name``/``_name`` pairs; for arrays both lists align, nulls as gaps."""
        if not element.repeats:
            self.primitive(element, value, extras, depth, path, 0)
            return
        values = _as_list([] if value is None else value, element, path)
        companions = _as_list([] if extras is None else extras, element, path)
        for index in range(max(len(values), len(companions))):
            item = values[index] if index < len(values) else None
            companion = companions[index] if index < len(companions) else None
            if item is not None or companion is not None:
                self.primitive(element, item, companion, depth, path, index)

    def primitive(
        self, element: ElementInfo, value: Any, extras: Any, depth: int, path: str, index: int
    ) -> None:
        """One primitive; ``path`` is the parent's, the element's own is built on error."""
        attr = "" if value is None else _value_attribute("value", element, value, path, index)
        if extras is None:
            self.parts.append(f"{self.pad(depth)}<{element.name}{attr}/>")
            return
        item_path = _item_path(path, element, index)
        self.object(element.name, extras, _xml_type("Element"), depth, item_path, attr)


def _present_elements(obj: Any, xml_type: _XmlType, path: str, skip: str) -> list[ElementInfo]:
    """The elements present in a JSON object, in definition order; unknown keys fail."""
    if not isinstance(obj, Mapping):
        raise XmlFormatError(f"Expected an object, got {type(obj).__name__}", path)
    by_name = xml_type.info.by_name
    present: dict[str, ElementInfo] = {}
    for key in obj:
        if key == skip:
            continue
        name = key[1:] if key.startswith("_") else key
        element = by_name.get(name)
        if element is None or (name != key and element.kind != "primitive"):
            raise XmlFormatError(f"Unknown element '{key}'", f"{path}.{key}")
        present[name] = element
    elements = sorted(present.values(), key=_BY_INDEX)
    for previous, element in itertools.pairwise(elements):
        if previous.index == element.index:
            raise _order_error(previous, element, path)
    return elements


def _as_list(value: Any, element: ElementInfo, path: str) -> list[Any]:
    """The occurrences of an element; ``path`` is the parent's."""
    if element.repeats:
        if not isinstance(value, list):
            where = f"{path}.{element.name}"
            raise XmlFormatError(f"Element '{element.name}' must be an array", where)
        return value
    if isinstance(value, list):
        where = f"{path}.{element.name}"
        raise XmlFormatError(f"Element '{element.name}' must not be an array", where)
    return [value]


def _value_attribute(name: str, element: ElementInfo, value: Any, path: str, index: int) -> str:
    """`` name="text"`` for a primitive value, escaped; invalid values raise with a path."""
    text = _format_value(element, value)
    if text is not None:
        if _ATTR_SPECIAL.search(text) is None:
            return f' {name}="{text}"'
        if _XML_INVALID.search(text) is None:
            return f' {name}="{text.translate(_ATTR_ESCAPES)}"'
    where = _item_path(path, element, index)
    if text is not None:
        raise XmlFormatError("Value contains characters not allowed in XML", where)
    raise XmlFormatError(f"Invalid {element.type} value {value!r:.60}", where)


def _format_value(element: ElementInfo, value: Any) -> str | None:
    """The XML text of a JSON primitive (decimals as written), None if it has the wrong type."""
    kind = element.json_kind
    if kind == "string":
        return value if isinstance(value, str) else None
    if kind == "boolean":
        return ("true" if value else "false") if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if kind == "decimal" and isinstance(value, Decimal) and value.is_finite():
        return _decimal_text(value)
    if kind == "decimal" and isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return None


def _decimal_text(value: Decimal) -> str:
    """``str`` keeps precision; avoid its ``1E-7`` form for numbers written as 0.0000001."""
    text = str(value)
    if "E" in text and int(value.as_tuple().exponent) < 0:
        return format(value, "f")
    return text


def _checked_div(text: Any, path: str) -> str:
    """The div string to embed, once proven to be a well-formed XHTML div."""
    if not isinstance(text, str):
        raise XmlFormatError("Narrative div must be a string", path)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        raise XmlFormatError("Narrative div contains invalid characters", path) from None
    div = _parse(data, "Narrative div", path)
    if div.tag != _DIV_TAG:
        raise XmlFormatError(f"Narrative must be an XHTML <div> in namespace {XHTML_NS}", path)
    if text.lstrip().startswith("<?"):  # an XML declaration cannot be embedded
        return _div_text(div)
    return text

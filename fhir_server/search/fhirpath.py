"""A FHIRPath compiler for search-parameter expressions, typed by the R4 structure.

Search parameters say *where* their values are with FHIRPath (``Observation.value as
Quantity``, ``Patient.telecom.where(system='phone')``). Interpreting FHIRPath for every write
would be slow, and JSON carries no types, so expressions are compiled once, against the
element definitions (``fhir_server.fhir.structure``), into closures over plain dicts:

* a compiled expression is a tuple of :class:`Branch` es, each with one static FHIR type
  (``CodeableConcept``, ``dateTime``, a backbone path, ``Resource``...) and a function
  ``(focus, root) -> list``; a choice element (``Observation.value``) yields one branch per
  variant (``valueQuantity``, ``valueString``...), so ``as``/``ofType``/``is`` are decided at
  compile time and callers pick a value converter per branch, not per value;
* a type name at the start of a path (``Condition.code``) is a filter on the input type, so
  the parts of a multi-base union meant for other types compile to nothing;
* ``resolve()`` cannot load anything at index time: it yields the *type* of the referenced
  resource (from ``Type/id``, an absolute URL, a contained ``#id`` or ``Reference.type``),
  which is what ``where(resolve() is Patient)`` needs; navigating from it is rejected;
* the usual ``where()`` criteria (``system = 'phone'``, ``resolve() is Patient``) become
  direct tests, and a ``where()`` on a plain path exposes both (``Branch.filtered``) so
  extraction can walk, filter and convert in one loop.

Supported: paths, choice types, ``|``, indexers, literals, ``$this``, ``%resource``,
``%rootResource``, ``%ucum``/``%sct``/``%loinc``, ``= != ~ !~ < > <= >= and or xor implies in
contains is as``, and the functions ``where exists empty not first last tail skip take single
count hasValue as is ofType resolve extension select trace``. Anything else (arithmetic, date
literals, string functions...) raises :class:`FhirPathError` naming the construct.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from fhir_server.fhir import structure

__all__ = [
    "Branch",
    "CompiledPath",
    "FhirPathError",
    "Reference",
    "compile_path",
    "root_type",
    "split_reference",
    "union_terms",
]

Fn = Callable[[Any, Any], list[Any]]
"""``(focus, root resource) -> collection``."""

Keep = Callable[[Any, Any], bool]
"""``(item, root resource) -> whether where() keeps the item``."""

REF_TYPE = "$resolved"
"""Static type of ``resolve()`` results: the referenced resource's type name (or nothing)."""


class FhirPathError(ValueError):
    """An expression that cannot be parsed or compiled (the message says where and why)."""


# ---------------------------------------------------------------------------------- parsing

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<str>'(?:[^'\\]|\\.)*')
  | (?P<delim>`(?:[^`\\]|\\.)*`)
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<date>@[0-9T:.+\-Z]*)
  | (?P<var>%(?:[A-Za-z_][A-Za-z0-9_\-]*|'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`))
  | (?P<special>\$(?:this|index|total))
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>!=|!~|<=|>=|[=~<>|.()\[\],+\-*/&{}])
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n"}
_ESCAPES |= {"r": "\r", "t": "\t"}

# Binding power of infix operators (FHIRPath precedence, loosest first).
_PRECEDENCE = (
    ("implies",),
    ("or", "xor"),
    ("and",),
    ("in", "contains"),
    ("=", "~", "!=", "!~"),
    ("<", ">", "<=", ">="),
    ("|",),
    ("is", "as"),
    ("+", "-", "&"),
    ("*", "/", "div", "mod"),
)
_INFIX = {op: power for power, ops in enumerate(_PRECEDENCE, start=1) for op in ops}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class _Node:
    """AST node; ``start``/``end`` delimit its source text (used to split unions by base)."""

    kind: str  # lit, empty, ident, func, var, this, invoke, index, binary, typeop, paren, neg
    start: int
    end: int
    value: Any = None  # literal value, identifier/function/variable name, operator, type name
    args: tuple[_Node, ...] = ()


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", body[i + 2 : i + 6]):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _tokenize(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FhirPathError(f"unexpected character {text[pos]!r} at {pos} in {text!r}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Tok("eof", "", len(text)))
    return tokens


class _Parser:
    """Pratt parser for the FHIRPath grammar (operators, invocations, indexers, literals)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def fail(self, message: str, tok: _Tok | None = None) -> FhirPathError:
        tok = tok or self.tokens[self.i]
        return FhirPathError(f"{message} at {tok.pos} in {self.text!r}")

    def peek(self) -> _Tok:
        return self.tokens[self.i]

    def take(self, text: str | None = None) -> _Tok:
        tok = self.tokens[self.i]
        if text is not None and tok.text != text:
            raise self.fail(f"expected {text!r}, found {tok.text or 'end'!r}")
        self.i += 1
        return tok

    def parse(self) -> _Node:
        node = self.expression(0)
        if self.peek().kind != "eof":
            raise self.fail(f"unexpected {self.peek().text!r}")
        return node

    def expression(self, min_power: int) -> _Node:
        left = self.prefix()
        while True:
            tok = self.peek()
            power = _INFIX.get(tok.text) if tok.kind in ("op", "id") else None
            if power is None or power <= min_power:
                return left
            self.take()
            if tok.text in ("is", "as"):
                name, end = self.type_specifier()
                left = _Node("typeop", left.start, end, (tok.text, name), (left,))
                continue
            right = self.expression(power)
            left = _Node("binary", left.start, right.end, tok.text, (left, right))

    def type_specifier(self) -> tuple[str, int]:
        parts = [self.identifier()]
        while self.peek().text == "." and self.tokens[self.i + 1].kind in ("id", "delim"):
            self.take(".")
            parts.append(self.identifier())
        return ".".join(parts), self.tokens[self.i - 1].pos + len(self.tokens[self.i - 1].text)

    def identifier(self) -> str:
        tok = self.take()
        if tok.kind == "id":
            return tok.text
        if tok.kind == "delim":
            return _unescape(tok.text[1:-1])
        raise self.fail(f"expected an identifier, found {tok.text or 'end'!r}", tok)

    def prefix(self) -> _Node:
        tok = self.peek()
        if tok.text in ("-", "+") and tok.kind == "op":
            self.take()
            operand = self.expression(10)
            kind = "neg" if tok.text == "-" else "paren"
            return self.postfix(_Node(kind, tok.pos, operand.end, None, (operand,)))
        return self.postfix(self.term())

    def term(self) -> _Node:
        tok = self.take()
        end = tok.pos + len(tok.text)
        if tok.kind == "str":
            return _Node("lit", tok.pos, end, _unescape(tok.text[1:-1]))
        if tok.kind == "num":
            number = Decimal(tok.text) if "." in tok.text else int(tok.text)
            return _Node("lit", tok.pos, end, number)
        if tok.kind == "date":
            raise self.fail("date/time literals are not supported", tok)
        if tok.kind == "var":
            name = tok.text[1:]
            if name[:1] in "'`":
                name = _unescape(name[1:-1])
            return _Node("var", tok.pos, end, name)
        if tok.kind == "special":
            if tok.text != "$this":
                raise self.fail(f"{tok.text} is not supported", tok)
            return _Node("this", tok.pos, end)
        if tok.text in ("true", "false") and tok.kind == "id":
            return _Node("lit", tok.pos, end, tok.text == "true")
        if tok.text == "(":
            inner = self.expression(0)
            close = self.take(")")
            return _Node("paren", tok.pos, close.pos + 1, None, (inner,))
        if tok.text == "{":
            close = self.take("}")
            return _Node("empty", tok.pos, close.pos + 1)
        if tok.kind in ("id", "delim"):
            self.i -= 1
            return self.member()
        raise self.fail(f"unexpected {tok.text or 'end'!r}", tok)

    def member(self) -> _Node:
        start = self.peek().pos
        name = self.identifier()
        if self.peek().text != "(":
            return _Node("ident", start, self.tokens[self.i - 1].pos + len(name), name)
        self.take("(")
        args: list[_Node] = []
        if self.peek().text != ")":
            args.append(self.expression(0))
            while self.peek().text == ",":
                self.take(",")
                args.append(self.expression(0))
        close = self.take(")")
        return _Node("func", start, close.pos + 1, name, tuple(args))

    def postfix(self, node: _Node) -> _Node:
        while True:
            tok = self.peek()
            if tok.text == "." and tok.kind == "op":
                self.take()
                member = self.member()
                node = _Node("invoke", node.start, member.end, None, (node, member))
            elif tok.text == "[":
                self.take()
                index = self.expression(0)
                close = self.take("]")
                node = _Node("index", node.start, close.pos + 1, None, (node, index))
            else:
                return node


@lru_cache(maxsize=4096)
def _parse(text: str) -> _Node:
    return _Parser(text).parse()


def _union_nodes(node: _Node) -> list[_Node]:
    if node.kind == "binary" and node.value == "|":
        return _union_nodes(node.args[0]) + _union_nodes(node.args[1])
    return [node]


def union_terms(expression: str) -> list[str]:
    """The top-level ``|`` terms of an expression, as source text (parentheses kept)."""
    node = _parse(expression)
    return [expression[term.start : term.end] for term in _union_nodes(node)]


def root_type(term: str) -> str | None:
    """The type name a path starts with (``(Observation.value as X)`` -> ``Observation``).

    None when the path starts with an element, a variable or ``$this``: it applies to any base.
    """
    node: _Node | None = _parse(term)
    while node is not None:
        if node.kind == "ident":
            name = str(node.value)
            return name if name[:1].isupper() else None
        if node.kind in ("invoke", "index", "typeop", "paren", "binary"):
            node = node.args[0]
        else:
            return None
    return None


# ------------------------------------------------------------------------------ references


@dataclass(frozen=True, slots=True)
class Reference:
    """A parsed reference string: ``Patient/1``, ``http://x/fhir/Patient/1/_history/2``..."""

    type: str | None
    id: str | None
    version: str | None
    url: str | None  # absolute URL (without ``_history``), ``urn:uuid:``/``urn:oid:``, or None


_REF = re.compile(
    r"^(?:(?P<base>[A-Za-z][A-Za-z0-9+.\-]*://.*?)/)?(?P<type>[A-Z][A-Za-z]+)/"
    r"(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/(?P<version>[A-Za-z0-9\-.]{1,64}))?$"
)


@lru_cache(maxsize=8192)
def split_reference(text: str) -> Reference | None:
    """Parse a literal reference; None for a contained ``#id`` or an empty string.

    Relative ``Type/id`` gives type and id; an absolute RESTful URL gives type, id and url;
    anything else (``urn:uuid:...``, a logical URI) only a url.
    """
    if not text or text.startswith("#"):
        return None
    match = _REF.match(text)
    if match is None or match["type"] not in structure.resource_types():
        return Reference(None, None, None, text)
    base = match["base"]
    url = f"{base}/{match['type']}/{match['id']}" if base else None
    return Reference(match["type"], match["id"], match["version"], url)


def _reference_type(value: Any, root: Any) -> str | None:
    """Type of the resource a Reference (dict) or canonical/uri (str) points to."""
    if isinstance(value, str):
        parsed = split_reference(value.partition("|")[0])
        return parsed.type if parsed else None
    if not isinstance(value, dict):
        return None
    ref = value.get("reference")
    if isinstance(ref, str):
        if ref.startswith("#"):
            for contained in (root or {}).get("contained") or ():
                if isinstance(contained, dict) and "#" + str(contained.get("id")) == ref:
                    return str(contained.get("resourceType"))
            return None
        parsed = split_reference(ref)
        if parsed is not None and parsed.type is not None:
            return parsed.type
    declared = value.get("type")
    if isinstance(declared, str) and declared:
        return declared.rsplit("/", 1)[-1]
    return None


# ------------------------------------------------------------------------------------ types

_SUBTYPES = {
    "Quantity": {"Age", "Count", "Distance", "Duration", "MoneyQuantity", "SimpleQuantity"},
    "string": {"code", "id", "markdown"},
    "uri": {"url", "canonical", "oid", "uuid"},
    "integer": {"positiveInt", "unsignedInt"},
}
# FHIRPath System types and the FHIR types they cover.
_SYSTEM = {
    "Boolean": {"boolean"},
    "String": {"string", "code", "id", "markdown", "uri", "url", "canonical", "oid", "uuid"}
    | {"base64Binary"},
    "Integer": {"integer", "positiveInt", "unsignedInt"},
    "Decimal": {"decimal"},
    "Date": {"date"},
    "DateTime": {"dateTime", "instant"},
    "Time": {"time"},
    "Quantity": {"Quantity"} | _SUBTYPES["Quantity"],
}
_NOT_DOMAIN = frozenset({"Bundle", "Binary", "Parameters"})


@cache
def _fhir_types() -> frozenset[str]:
    """Every type name a type specifier may use: resources, datatypes and primitives.

    Datatypes are those reachable from the resources' elements (Extension reaches them all).
    """
    names = set(structure.resource_types() | structure.primitive_types())
    names |= {"Resource", "DomainResource", "Element", "BackboneElement"}
    names |= {"SimpleQuantity", "MoneyQuantity"}  # profiles of Quantity, valid in type tests
    pending = [*sorted(structure.resource_types()), "Extension"]
    walked: set[str] = set()
    while pending:
        name = pending.pop()
        if name in walked:
            continue
        walked.add(name)
        for element in structure.type_info(name).elements:
            if element.kind == "complex":
                pending.append(element.type)
                if "." not in element.type:
                    names.add(element.type)
    return frozenset(names)


def _resolve_type(name: str) -> str:
    """Canonical form of a type specifier: a FHIR type name or ``System.X``."""
    if name.startswith("FHIR."):
        name = name[5:]
    elif name.startswith("System."):
        if name[7:] not in _SYSTEM:
            raise FhirPathError(f"unknown type {name!r}")
        return name
    if name in _fhir_types():
        return name
    if name in _SYSTEM:
        return "System." + name
    raise FhirPathError(f"unknown type {name!r}")


def _is_a(actual: str, wanted: str) -> bool:
    """Whether static type ``actual`` is ``wanted`` or one of its specialisations."""
    if actual == wanted:
        return True
    if wanted.startswith("System."):
        return actual in _SYSTEM[wanted[7:]]
    if wanted == "Resource":
        return actual in structure.resource_types()
    if wanted == "DomainResource":
        return actual in structure.resource_types() and actual not in _NOT_DOMAIN
    if wanted in ("Element", "BackboneElement"):
        return actual not in structure.resource_types() and actual != "Resource"
    return actual in _SUBTYPES.get(wanted, ())


# --------------------------------------------------------------------------------- compiler


@dataclass(frozen=True, slots=True)
class Branch:
    """Values of one static type: ``fn(focus, root)`` returns them (never None if primitive).

    ``path`` is set while the branch is plain navigation from the focus (JSON keys), so
    further steps extend one loop instead of nesting closures. ``root`` is the focus's JSON
    key every value comes from, when there is one: without that key the branch yields
    nothing, so callers may skip it (None: it may yield values from any focus, as
    ``exists()``, literals and ``%resource`` do).
    """

    type: str
    fn: Fn
    path: tuple[str, ...] | None = None
    choice: tuple[_Choice, str] | None = None  # (choice element, this variant's JSON name)
    root: str | None = None
    #: ``(path, keep)`` when the values are those of plain navigation ``path`` for which
    #: ``keep(item, root)`` holds (``telecom.where(system='phone')``), so callers may walk,
    #: filter and use them in one loop.
    filtered: tuple[tuple[str, ...], Keep] | None = None


@dataclass(frozen=True, slots=True, eq=False)
class _Choice:
    """The variants of one choice element reached from one parent, for document order."""

    parent: Fn
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompiledPath:
    """A compiled expression: evaluate with ``evaluate`` or walk ``branches`` for types."""

    expression: str
    input_type: str
    branches: tuple[Branch, ...]

    def evaluate(self, focus: Any, root: Any = None) -> list[Any]:
        """All result values, in branch order (``root`` serves ``%resource``/``resolve()``)."""
        root = focus if root is None else root
        if len(self.branches) == 1:
            return self.branches[0].fn(focus, root)
        return [value for branch in self.branches for value in branch.fn(focus, root)]

    def evaluate_typed(self, focus: Any, root: Any = None) -> list[tuple[str, Any]]:
        """Result values paired with their static FHIR type."""
        root = focus if root is None else root
        return [(b.type, value) for b in self.branches for value in b.fn(focus, root)]


def _identity(focus: Any, root: Any) -> list[Any]:
    return [focus]


def _get(item: Any, key: str, out: list[Any]) -> None:
    """Append ``item[key]`` (flattened). Arrays may hold nulls: see :func:`_no_nulls`."""
    if isinstance(item, dict):
        value = item.get(key)
        if value is None:
            return
        if isinstance(value, list):
            out.extend(value)
        else:
            out.append(value)


def _no_nulls(fn: Fn) -> Fn:
    """Drop the nulls JSON puts in primitive arrays whose items only have extensions.

    Only primitive arrays may hold them, and primitives are leaves, so only branches of a
    primitive type are filtered (complex arrays are copied as they are: a Bundle has many).
    """

    def filtered(focus: Any, root: Any) -> list[Any]:
        return [v for v in fn(focus, root) if v is not None]

    return filtered


def _nav_path(keys: tuple[str, ...], primitive: bool = False) -> Fn:
    """Plain navigation from the focus; ``primitive``: drop nulls from the last step (as
    :func:`_no_nulls`, fused here: most branches are such paths)."""
    if len(keys) == 1:
        key = keys[0]

        def one(focus: Any, root: Any) -> list[Any]:
            if not isinstance(focus, dict):
                return []
            value = focus.get(key)
            if value is None:
                return []
            if isinstance(value, list):
                return [v for v in value if v is not None] if primitive else list(value)
            return [value]

        return one

    def many(focus: Any, root: Any) -> list[Any]:
        items = [focus]
        for key in keys:
            out: list[Any] = []
            for item in items:
                if isinstance(item, dict):
                    value = item.get(key)
                    if value is None:
                        continue
                    if isinstance(value, list):
                        out.extend(value)
                    else:
                        out.append(value)
            if not out:
                return out
            items = out
        return [v for v in items if v is not None] if primitive else items

    return many


def _nav_after(prev: Fn, key: str) -> Fn:
    def fn(focus: Any, root: Any) -> list[Any]:
        out: list[Any] = []
        for item in prev(focus, root):
            _get(item, key, out)
        return out

    return fn


def _step(branch: Branch, key: str, type_: str) -> Branch:
    primitive = type_ in structure.primitive_types()
    if branch.path is not None:
        path = (*branch.path, key)
        fn = _nav_path(path, primitive)
        root: str | None = path[0]
    else:
        path, fn, root = None, _nav_after(branch.fn, key), branch.root
        if primitive:
            fn = _no_nulls(fn)
    return Branch(type_, fn, path, root=root)


def _filter(branch: Branch, keep: Keep, type_: str | None = None) -> Branch:
    prev = branch.fn

    def fn(focus: Any, root: Any) -> list[Any]:
        return [item for item in prev(focus, root) if keep(item, root)]

    filtered = (branch.path, keep) if branch.path is not None else None
    return Branch(type_ or branch.type, fn, root=branch.root, filtered=filtered)


def _map(branch: Branch, op: Callable[[list[Any], Any], list[Any]], type_: str) -> Branch:
    prev = branch.fn
    return Branch(type_, lambda focus, root: op(prev(focus, root), root), root=branch.root)


def _combine(branches: Sequence[Branch]) -> Fn:
    """One function returning the concatenated values of all branches."""
    if not branches:
        return lambda focus, root: []
    if len(branches) == 1:
        return branches[0].fn
    fns = [b.fn for b in branches]
    return lambda focus, root: [v for fn in fns for v in fn(focus, root)]


def _truth(items: list[Any]) -> bool | None:
    """Singleton evaluation of collections: empty -> None, one boolean -> it, one item -> True."""
    if not items:
        return None
    if len(items) == 1:
        item = items[0]
        return item if isinstance(item, bool) else True
    return None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, Decimal)) and isinstance(b, (int, Decimal)):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _equivalent(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.casefold().split()) == " ".join(b.casefold().split())
    return _equal(a, b)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _compare(op: str, a: list[Any], b: list[Any]) -> list[Any]:
    """Ordering of two numbers or two strings; anything else is empty (unknown)."""
    if len(a) != 1 or len(b) != 1 or isinstance(a[0], bool) or isinstance(b[0], bool):
        return []
    numbers = isinstance(a[0], (int, Decimal)) and isinstance(b[0], (int, Decimal))
    if not numbers and not (isinstance(a[0], str) and isinstance(b[0], str)):
        return []
    return [_ORDER[op](a[0], b[0])]


def _equality(op: str, a: list[Any], b: list[Any]) -> list[Any]:
    if op in ("~", "!~"):
        same = len(a) == len(b) and all(_equivalent(x, y) for x, y in zip(a, b, strict=True))
        return [same if op == "~" else not same]
    if not a or not b:
        return []
    same = len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return [same if op == "=" else not same]


def _logic(op: str, a: bool | None, b: bool | None) -> list[Any]:
    result: bool | None
    if op == "and":
        result = False if a is False or b is False else (None if a is None or b is None else True)
    elif op == "or":
        result = True if a is True or b is True else (None if a is None or b is None else False)
    elif op == "xor":
        result = None if a is None or b is None else a != b
    else:  # implies
        if a is False or b is True:
            result = True
        elif a is None:
            result = None
        else:
            result = b
    return [] if result is None else [result]


_CONSTANTS = {
    "ucum": "http://unitsofmeasure.org",
    "sct": "http://snomed.info/sct",
    "loinc": "http://loinc.org",
}
_LITERAL_TYPES = {bool: "boolean", str: "string", int: "integer", Decimal: "decimal"}


class _Compiler:
    """Compiles one AST against an input type; ``resource_type`` types ``%resource``."""

    def __init__(self, text: str, resource_type: str) -> None:
        self.text = text
        self.resource_type = resource_type

    def fail(self, node: _Node, message: str) -> FhirPathError:
        snippet = self.text[node.start : node.end]
        return FhirPathError(f"{message} (in {snippet!r} of {self.text!r})")

    # An expression is compiled against a context: one branch whose fn returns [focus].
    def expr(self, node: _Node, ctx: Branch) -> list[Branch]:
        kind = node.kind
        if kind == "paren":
            return self.expr(node.args[0], ctx)
        if kind == "lit":
            value = node.value
            return [Branch(_LITERAL_TYPES[type(value)], lambda focus, root: [value])]
        if kind == "empty":
            return []
        if kind == "this":
            return [ctx]
        if kind == "var":
            return [self.variable(node)]
        if kind in ("ident", "func"):
            return self.member(node, [ctx], ctx, first=True)
        if kind == "invoke":
            left = self.expr(node.args[0], ctx)
            return self.member(node.args[1], left, ctx, first=False)
        if kind == "index":
            left = self.expr(node.args[0], ctx)
            index = node.args[1]
            if index.kind != "lit" or type(index.value) is not int:
                raise self.fail(node, "indexers must be integer literals")
            position: int = index.value
            return _positional(left, lambda items: items[position : position + 1])
        if kind == "typeop":
            op, name = node.value
            wanted = self.type_name(node, name)
            return self.type_op(node, op, wanted, self.expr(node.args[0], ctx))
        if kind == "binary":
            if node.value == "|":
                return self.expr(node.args[0], ctx) + self.expr(node.args[1], ctx)
            return [self.binary(node, ctx)]
        if kind == "neg":
            operand = node.args[0]
            if operand.kind == "lit" and type(operand.value) in (int, Decimal):
                negative = -operand.value
                return [Branch(_LITERAL_TYPES[type(negative)], lambda focus, root: [negative])]
            raise self.fail(node, "arithmetic is not supported")
        raise self.fail(node, f"unsupported construct {kind!r}")

    def type_name(self, node: _Node, name: str) -> str:
        try:
            return _resolve_type(name)
        except FhirPathError as exc:
            raise self.fail(node, str(exc)) from None

    def variable(self, node: _Node) -> Branch:
        name = str(node.value)
        if name in ("resource", "rootResource"):
            return Branch(self.resource_type, lambda focus, root: [root])
        if name in _CONSTANTS:
            constant = _CONSTANTS[name]
            return Branch("string", lambda focus, root: [constant])
        raise self.fail(node, f"unknown variable %{name}")

    def binary(self, node: _Node, ctx: Branch) -> Branch:
        op = str(node.value)
        left = _combine(self.expr(node.args[0], ctx))
        right = _combine(self.expr(node.args[1], ctx))
        if op in ("=", "!=", "~", "!~"):
            return Branch("boolean", lambda f, r: _equality(op, left(f, r), right(f, r)))
        if op in ("<", ">", "<=", ">="):
            return Branch("boolean", lambda f, r: _compare(op, left(f, r), right(f, r)))
        if op in ("and", "or", "xor", "implies"):
            return Branch(
                "boolean", lambda f, r: _logic(op, _truth(left(f, r)), _truth(right(f, r)))
            )
        if op in ("in", "contains"):
            item_fn, pool_fn = (left, right) if op == "in" else (right, left)

            def member(f: Any, r: Any) -> list[Any]:
                item = item_fn(f, r)
                if len(item) != 1:
                    return []
                return [any(_equal(item[0], other) for other in pool_fn(f, r))]

            return Branch("boolean", member)
        raise self.fail(node, f"operator {op!r} is not supported")

    def type_op(self, node: _Node, op: str, wanted: str, branches: list[Branch]) -> list[Branch]:
        """``is`` tests, ``as``/``ofType`` keep the values of the wanted type (per branch)."""
        if op == "is":
            return [self.is_test(node, wanted, branches)]
        out: list[Branch] = []
        for branch in branches:
            if branch.type == REF_TYPE:
                raise self.fail(node, "only 'is' can test resolve() results at index time")
            if _is_a(branch.type, wanted):
                out.append(branch)
            elif branch.type == "Resource" and wanted in structure.resource_types():
                out.append(_filter(branch, lambda item, root: _rtype(item) == wanted, wanted))
        return out

    def is_test(self, node: _Node, wanted: str, branches: list[Branch]) -> Branch:
        tests: list[tuple[Fn, Callable[[Any], bool]]] = []
        for branch in branches:
            if branch.type == REF_TYPE:
                tests.append((branch.fn, lambda item: _is_a(str(item), wanted)))
            elif branch.type == "Resource":
                tests.append((branch.fn, lambda item: _is_a(_rtype(item), wanted)))
            else:
                tests.append((branch.fn, _constant(_is_a(branch.type, wanted))))

        def fn(focus: Any, root: Any) -> list[Any]:
            found = [(test, item) for get, test in tests for item in get(focus, root)]
            if len(found) != 1:
                return []
            test, item = found[0]
            return [test(item)]

        return Branch("boolean", fn)

    # A member (identifier or function) applied to the collection of ``inputs``.
    def member(self, node: _Node, inputs: list[Branch], ctx: Branch, first: bool) -> list[Branch]:
        if node.kind == "ident":
            return self.navigate(node, str(node.value), inputs, first)
        if node.kind != "func":
            raise self.fail(node, "expected an element name or a function")
        return self.function(node, str(node.value), node.args, inputs, ctx)

    def navigate(self, node: _Node, name: str, inputs: list[Branch], first: bool) -> list[Branch]:
        if first and name[:1].isupper() and name in _fhir_types():
            return self.type_filter(name, inputs)
        out: list[Branch] = []
        for branch in inputs:
            out.extend(self.child(node, branch, name))
        return out

    def type_filter(self, name: str, inputs: list[Branch]) -> list[Branch]:
        """A leading type name selects the focus when it has that type (else nothing)."""
        out: list[Branch] = []
        for branch in inputs:
            if _is_a(branch.type, name):
                out.append(branch)
            elif branch.type == "Resource" and name in structure.resource_types():
                out.append(_filter(branch, lambda item, root: _rtype(item) == name, name))
        return out

    def child(self, node: _Node, branch: Branch, name: str) -> list[Branch]:
        if branch.type == REF_TYPE:
            raise self.fail(node, "cannot navigate from resolve() at index time")
        if branch.type in structure.primitive_types() or branch.type in _LITERAL_TYPES.values():
            raise self.fail(node, f"{branch.type} is a primitive: it has no element {name!r}")
        try:
            info = structure.type_info(branch.type)
        except KeyError as exc:
            raise self.fail(node, f"unknown type {branch.type!r}") from exc
        variants = info.by_base.get(name)
        if variants is None:
            element = info.by_name.get(name)
            if element is None:
                where = "a resource of unknown type" if branch.type == "Resource" else branch.type
                raise self.fail(node, f"{where} has no element {name!r}")
            variants = (element,)
        if len(variants) == 1:
            return [_step(branch, variants[0].name, variants[0].type)]
        group = _Choice(branch.fn, tuple(e.name for e in variants))
        return [replace(_step(branch, e.name, e.type), choice=(group, e.name)) for e in variants]

    def function(
        self,
        node: _Node,
        name: str,
        args: tuple[_Node, ...],
        inputs: list[Branch],
        ctx: Branch,
    ) -> list[Branch]:
        arity = _ARITY.get(name)
        if arity is None:
            raise self.fail(node, f"function {name}() is not supported")
        if len(args) not in arity:
            raise self.fail(node, f"{name}() takes {' or '.join(map(str, arity))} argument(s)")
        if name in ("as", "is", "ofType"):
            wanted = self.type_name(node, _type_name(self, args[0]))
            return self.type_op(node, "is" if name == "is" else "as", wanted, inputs)
        if name == "where":
            return [self.where(branch, args[0]) for branch in inputs]
        if name == "select":
            return [out for branch in inputs for out in self.select(branch, args[0])]
        if name == "exists":
            selected = [self.where(b, args[0]) for b in inputs] if args else inputs
            return [_aggregate(selected, lambda items: [bool(items)], "boolean")]
        if name == "empty":
            return [_aggregate(inputs, lambda items: [not items], "boolean")]
        if name == "count":
            return [_aggregate(inputs, lambda items: [len(items)], "integer")]
        if name == "not":
            return [_aggregate(inputs, _not, "boolean")]
        if name == "hasValue":
            return [_aggregate(inputs, _has_value, "boolean")]
        if name == "resolve":
            return [self.resolve(node, branch) for branch in inputs]
        if name == "extension":
            return self.extension(node, args[0], inputs)
        if name == "trace":
            return inputs
        return _positional(inputs, self.positional(node, name, args))

    def positional(
        self, node: _Node, name: str, args: tuple[_Node, ...]
    ) -> Callable[[list[Any]], list[Any]]:
        if name == "first":
            return lambda items: items[:1]
        if name == "last":
            return lambda items: items[-1:]
        if name == "tail":
            return lambda items: items[1:]
        if name == "single":
            return lambda items: items if len(items) == 1 else []
        count = args[0]
        if count.kind != "lit" or type(count.value) is not int:
            raise self.fail(node, f"{name}() needs an integer literal")
        n: int = count.value
        return (lambda items: items[n:]) if name == "skip" else (lambda items: items[:n])

    def where(self, branch: Branch, criteria: _Node) -> Branch:
        ctx = Branch(branch.type, _identity, ())
        test = _combine(self.expr(criteria, ctx))

        def keep(item: Any, root: Any) -> bool:
            return _truth(test(item, root)) is True

        return _filter(branch, self.quick_criteria(criteria, ctx, keep) or keep)

    def quick_criteria(self, criteria: _Node, ctx: Branch, keep: Keep) -> Keep | None:
        """A direct test for the usual criteria, always equal to ``keep`` (None: no such shape).

        Search parameters mostly filter with ``system = 'phone'`` or ``resolve() is Patient``;
        composing their generic closures builds several lists per item.
        """
        if criteria.kind == "binary" and criteria.value == "=":
            left, right = criteria.args
            if left.kind == "ident" and right.kind == "lit" and type(right.value) is str:
                found = self.expr(left, ctx)
                path = found[0].path if len(found) == 1 else None
                if path is not None and len(path) == 1:
                    return _equals_literal(path[0], right.value, keep)
        if criteria.kind == "typeop" and criteria.value[0] == "is":
            operand = criteria.args[0]
            if operand.kind == "func" and operand.value == "resolve" and not operand.args:
                return _resolves_to(self.type_name(criteria, criteria.value[1]))
        return None

    def select(self, branch: Branch, projection: _Node) -> list[Branch]:
        out: list[Branch] = []
        for proj in self.expr(projection, Branch(branch.type, _identity, ())):
            prev, get = branch.fn, proj.fn

            def fn(focus: Any, root: Any, prev: Fn = prev, get: Fn = get) -> list[Any]:
                return [v for item in prev(focus, root) for v in get(item, root)]

            out.append(Branch(proj.type, fn, root=branch.root))
        return out

    def resolve(self, node: _Node, branch: Branch) -> Branch:
        if branch.type != "Reference" and not _is_a(branch.type, "uri"):
            raise self.fail(node, f"resolve() needs a Reference or canonical, not {branch.type}")

        def targets(items: list[Any], root: Any) -> list[Any]:
            found = (_reference_type(item, root) for item in items)
            return [t for t in found if t is not None]

        return _map(branch, targets, REF_TYPE)

    def extension(self, node: _Node, url_node: _Node, inputs: list[Branch]) -> list[Branch]:
        if url_node.kind != "lit" or not isinstance(url_node.value, str):
            raise self.fail(node, "extension() needs a string literal url")
        url = url_node.value
        out: list[Branch] = []
        for branch in inputs:
            for ext in self.child(node, branch, "extension"):
                out.append(_filter(ext, lambda item, root: _url(item) == url))
        return out


# Supported functions and their argument counts.
_ARITY: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("as", "is", "ofType", "where", "select", "extension", "skip", "take"), (1,)),
    **dict.fromkeys(("empty", "count", "not", "hasValue", "resolve"), (0,)),
    **dict.fromkeys(("first", "last", "tail", "single"), (0,)),
    "exists": (0, 1),
    "trace": (1, 2),
}


def _equals_literal(key: str, literal: str, slow: Keep) -> Keep:
    """``key = 'literal'``: a string under ``key`` decides alone (as ``=`` on two strings);
    anything else (absent, an array, another type) goes the generic way."""

    def keep(item: Any, root: Any) -> bool:
        if isinstance(item, dict):
            value = item.get(key)
            if type(value) is str:
                return value == literal
        return slow(item, root)

    return keep


def _resolves_to(wanted: str) -> Keep:
    """``resolve() is wanted`` on one Reference: its target's type, tested directly."""

    def keep(item: Any, root: Any) -> bool:
        found = _reference_type(item, root)
        return found is not None and _is_a(found, wanted)

    return keep


def _type_name(compiler: _Compiler, node: _Node) -> str:
    if node.kind == "ident":
        return str(node.value)
    if node.kind == "invoke" and all(a.kind == "ident" for a in node.args):
        return f"{node.args[0].value}.{node.args[1].value}"
    raise compiler.fail(node, "expected a type name")


def _constant(value: bool) -> Callable[[Any], bool]:
    return lambda item: value


def _rtype(item: Any) -> str:
    return str(item.get("resourceType")) if isinstance(item, dict) else ""


def _url(item: Any) -> Any:
    return item.get("url") if isinstance(item, dict) else None


def _not(items: list[Any]) -> list[Any]:
    value = _truth(items)
    return [] if value is None else [not value]


def _has_value(items: list[Any]) -> list[Any]:
    return [len(items) == 1 and not isinstance(items[0], (dict, list))]


def _aggregate(inputs: list[Branch], op: Callable[[list[Any]], list[Any]], type_: str) -> Branch:
    get = _combine(inputs)
    return Branch(type_, lambda focus, root: op(get(focus, root)))


def _positional(inputs: list[Branch], pick: Callable[[list[Any]], list[Any]]) -> list[Branch]:
    """first()/[n]/tail()... over the whole collection, which may span several branches.

    The variants of one choice element are re-read from their parent in document order;
    other multi-type collections (unions) are ordered branch by branch, left to right.
    """
    if len(inputs) == 1:
        prev = inputs[0].fn
        return [
            Branch(inputs[0].type, lambda focus, root: pick(prev(focus, root)), root=inputs[0].root)
        ]
    tagged = _choice_order(inputs, pick) or _branch_order(inputs, pick)
    out: list[Branch] = []
    for index, branch in enumerate(inputs):

        def fn(focus: Any, root: Any, index: int = index) -> list[Any]:
            return [v for i, v in tagged(focus, root) if i == index]

        out.append(Branch(branch.type, fn, root=branch.root))
    return out


Tagged = Callable[[Any, Any], list[tuple[int, Any]]]


def _branch_order(inputs: list[Branch], pick: Callable[[list[Any]], list[Any]]) -> Tagged:
    fns = [b.fn for b in inputs]
    return lambda focus, root: pick([(i, v) for i, fn in enumerate(fns) for v in fn(focus, root)])


def _choice_order(inputs: list[Branch], pick: Callable[[list[Any]], list[Any]]) -> Tagged | None:
    choices = [b.choice for b in inputs]
    groups = {id(c[0]) for c in choices if c is not None}
    if None in choices or len(groups) != 1:
        return None
    parent = choices[0][0].parent if choices[0] else _identity
    keys = [(i, c[1]) for i, c in enumerate(choices) if c is not None]

    def tagged(focus: Any, root: Any) -> list[tuple[int, Any]]:
        found: list[tuple[int, Any]] = []
        for item in parent(focus, root):
            if isinstance(item, dict):
                found.extend((i, item[key]) for i, key in keys if item.get(key) is not None)
        return pick(found)

    return tagged


@lru_cache(maxsize=16384)
def compile_path(
    expression: str, input_type: str, resource_type: str | None = None
) -> CompiledPath:
    """Compile ``expression`` for inputs of ``input_type`` (a resource, datatype or backbone
    path). ``resource_type`` is the type of ``%resource`` (defaults to ``input_type``).

    Raises :class:`FhirPathError` when the expression uses unsupported syntax or names an
    element the type does not have. Results are cached: compiled paths are immutable.
    """
    if input_type != "Resource":
        try:
            structure.type_info(input_type)
        except KeyError as exc:
            raise FhirPathError(f"unknown input type {input_type!r}") from exc
    compiler = _Compiler(expression, resource_type or input_type)
    node = _parse(expression)
    ctx = Branch(input_type, _identity, ())
    branches: list[Branch] = []
    for term in _union_nodes(node):
        branches.extend(compiler.expr(term, ctx))
    return CompiledPath(expression, input_type, tuple(branches))

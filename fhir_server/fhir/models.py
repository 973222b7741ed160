"""The one place that imports fhir.resources (its R4B models, the closest it ships to R4).

R4-only resource types that R4B lacks (MedicinalProduct*, EffectEvidenceSynthesis,
RiskEvidenceSynthesis, SubstanceSpecification) are checked by the R4 JSON schema alone; see
docs/validation.md for the other differences met.

Speed: fhir.resources validates every nested datatype (each Coding, Reference, Quantity...)
through several Python-level validators, ~10 µs apiece, and most of them repeat from one
resource to the next (codes, references to the same patient, units, reference ranges). So
:func:`validate_model` validates a resource bottom-up: every complex element is validated by
its own fhir.resources model class, exactly as the parent model would (the parent's field
validator calls ``Class.model_validate(value)`` on it; validation of an element does not
depend on where it sits), and the validated instance is remembered under the element's
exact JSON content; the parent is then validated with the instances in place, which
fhir.resources accepts as they are. An element seen before costs one serialisation and a
dictionary lookup. Each model class is also validated in one pass of its own core schema
instead of two (see the end of this module). Any failure falls back to validating the
original document in one piece with ``model_validate``, so the issues reported are exactly
those of a plain ``model_validate``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase
from fhir_core.utils import is_list_type, is_primitive_type
from pydantic_core import SchemaValidator

from fhir_server.fhir.outcomes import Issue

#: Types whose R4B model differs in structure from R4: the R4 schema alone judges them.
_R4B_DIFFERS = frozenset({"Evidence", "EvidenceVariable"})

#: fhir.resources errors the R4 schema already reports (or that R4B gets wrong, such as
#: ``_valueString`` inside Extension): only cardinality and value rules are taken from it.
_LEFT_TO_SCHEMA = frozenset({"extra_forbidden", "string_pattern_mismatch"})


@cache
def _model(resource_type: str) -> Any | None:
    if resource_type in _R4B_DIFFERS:
        return None
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError, AttributeError):
        return None


def _expression(base: str, loc: tuple[Any, ...]) -> str:
    out = base
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith("function-"):
            out += f".{part}"
    return out


def validate_model(resource: dict[str, Any]) -> list[Issue]:
    """Cardinality, choice-type and invariant-like checks of fhir.resources; never raises."""
    resource_type = str(resource.get("resourceType"))
    model = _model(resource_type)
    if model is None:
        return []
    try:
        _validate_cached(model, resource)
        return []
    except Exception:
        pass
    try:
        model.model_validate(resource)
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            return [Issue("structure", f"{resource_type}: {exc}", expression=(resource_type,))]
        issues = []
        for err in errors():
            if err.get("type") in _LEFT_TO_SCHEMA:
                continue
            where = _expression(resource_type, tuple(err.get("loc", ())))
            code = "required" if err.get("type") == "missing" else "invariant"
            issues.append(Issue(code, f"{err.get('msg')} ({where})", expression=(where,)))
        return issues
    return []


# ------------------------------------------------------------------ element-level memo


@dataclass(frozen=True, slots=True)
class _Node:
    """A model class, its validation function and, by JSON name, the model classes of its
    complex elements."""

    klass: Any
    children: dict[str, _Node]
    validate: Callable[[dict[str, Any]], Any]


def _node(klass: Any) -> _Node:
    found = _NODES.get(klass)
    if found is not None:
        return found
    children: dict[str, _Node] = {}
    node = _Node(klass, children, _fast_validator(klass) or klass.model_validate)
    # Registered before its children: types recurse.
    _NODES[klass] = node
    for name, field in klass.model_fields.items():
        fhir_type = _fhir_type(field.annotation)
        if fhir_type is None:
            continue
        child = fhir_type.get_model_klass()
        # Resource-typed elements (contained, entry.resource) take their class from their
        # resourceType: fhir.resources validates them itself, from the dict.
        if getattr(child, "__resource_type__", None) in ("Resource", "DomainResource"):
            continue
        children[field.alias or name] = _node(child)
    return node


_NODES: dict[Any, _Node] = {}


def _fhir_type(annotation: Any) -> Any | None:
    """The fhir_core type (``CodeableConceptType``...) inside ``list[X] | None`` and the like."""
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        return annotation
    for arg in typing.get_args(annotation):
        found = _fhir_type(arg)
        if found is not None:
            return found
    return None


class _Memo:
    """Validated element instances by (class, exact JSON); two generations, so entries in use
    survive while one-off values (ids, timestamps) age out in bounded memory (an entry holds
    a model instance, ~5 KB: 2 x 2,048 entries stay under ~20 MB per process)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.young: dict[tuple[Any, bytes], Any] = {}
        self.old: dict[tuple[Any, bytes], Any] = {}

    def get(self, key: tuple[Any, bytes]) -> Any | None:
        found = self.young.get(key)
        if found is None:
            found = self.old.get(key)
            if found is not None:
                self.put(key, found)
        return found

    def put(self, key: tuple[Any, bytes], value: Any) -> None:
        if len(self.young) >= self.size:
            self.old, self.young = self.young, {}
        self.young[key] = value

    def clear(self) -> None:
        self.young.clear()
        self.old.clear()


_memo = _Memo(2048)


def clear_cache() -> None:
    """Forget remembered elements (benchmarks; tests of the fallback)."""
    _memo.clear()


def _key_default(value: Any) -> Any:
    # Decimals get a form no JSON value serialises to (0xFF is never valid UTF-8), so a
    # Decimal never shares a key with a float or a string of the same digits.
    if type(value) is Decimal:
        return orjson.Fragment(b'"\xff' + str(value).encode() + b'"')
    raise TypeError(f"not plain JSON: {type(value).__name__}")


_KEY_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
_KEY_OPTIONS |= orjson.OPT_PASSTHROUGH_DATACLASS


def _validate_cached(model: Any, resource: dict[str, Any]) -> None:
    """Validate ``resource`` with its elements validated (or recalled) one by one; raises
    whatever fhir.resources raises on the first invalid element."""
    node = _node(model)
    node.validate(_prepared(node, resource))


def _prepared(node: _Node, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with each complex element replaced by its validated model instance."""
    children = node.children
    out: dict[str, Any] | None = None
    for key, value in data.items():
        child = children.get(key)
        if child is None:
            continue
        if type(value) is dict:
            new: Any = _instance(child, value)
        elif type(value) is list:
            new = [_instance(child, v) if type(v) is dict else v for v in value]
        else:
            continue
        if out is None:
            out = dict(data)
        out[key] = new
    return data if out is None else out


def _instance(node: _Node, value: dict[str, Any]) -> Any:
    key = (node.klass, orjson.dumps(value, default=_key_default, option=_KEY_OPTIONS))
    found = _memo.get(key)
    if found is None:
        found = node.validate(_prepared(node, value))
        _memo.put(key, found)
    return found


# ------------------------------------------------------------------ the model's own validator
#
# A fhir.resources model validates in two passes: ``model_validate`` runs its core schema,
# which calls the custom ``FHIRAbstractModel.__init__`` (it only checks ``resourceType``),
# which runs the same schema again; so its "after" validators run twice. And its "before"
# validator, ``reject_null_complex_elements``, re-derives on every call, from all ~100 fields
# of a resource, which of them are lists of complex elements. The validator built below runs
# the model's own core schema once: without the custom ``__init__`` (its check is done here),
# with the "before" validator's field list computed once per class by the library's own
# predicates. Anything it rejects is re-validated by ``model_validate`` (see
# :func:`validate_model`), which reports the issues. Classes whose schema does not have the
# expected shape (another fhir.resources or pydantic version) keep ``model_validate``.

_REJECT_NULLS = getattr(FHIRAbstractModel.reject_null_complex_elements, "__func__", None)


def _fast_validator(klass: Any) -> Callable[[dict[str, Any]], Any] | None:
    try:
        top = dict(klass.__pydantic_core_schema__)
        model = dict(top["schema"])
        before = dict(model["schema"])
        function = dict(before["function"])
        shape_ok = (
            top["type"] == "function-after"
            and model["type"] == "model"
            and model["cls"] is klass
            and model.get("custom_init") is True
            and before["type"] == "function-before"
            and function["type"] == "no-info"
            and getattr(function["function"], "__func__", None) is _REJECT_NULLS
            and _REJECT_NULLS is not None
            and before["schema"]["type"] == "model-fields"
        )
        if not shape_ok or klass.__init__ is not FHIRAbstractModel.__init__:
            return None
        function["function"] = _null_check(klass)
        before["function"] = function
        model["schema"] = before
        model["custom_init"] = False
        top["schema"] = model
        validator = SchemaValidator(top)
    except Exception:  # an unexpected schema: the plain model_validate
        return None
    resource_type = klass.__resource_type__
    has_field = "resourceType" in klass.model_fields

    def validate(data: dict[str, Any]) -> Any:
        # What FHIRAbstractModel.__init__ checks and removes before the fields are validated.
        if "resource_type" in data:
            return klass.model_validate(data)
        if not has_field and "resourceType" in data:
            found = data["resourceType"]
            if found is not None and found != resource_type:
                raise ValueError(f"resourceType {found!r} is not {resource_type!r}")
            data = {k: v for k, v in data.items() if k != "resourceType"}
        return validator.validate_python(data)

    return validate


def _null_check(klass: Any) -> Callable[[Any], Any]:
    """``reject_null_complex_elements`` of ``klass`` with its field list computed once."""
    fields = [
        (name, field.alias)
        for name, field in klass.model_fields.items()
        if is_list_type(field) and not is_primitive_type(field) and not name.endswith("__ext")
    ]

    def check(data: Any) -> Any:
        if isinstance(data, dict):
            for name, alias in fields:
                value = data.get(alias if alias and alias in data else name)
                if isinstance(value, list) and any(item is None for item in value):
                    raise ValueError(f"None is not allowed as an element of {alias or name}")
        return data

    return check

"""The mapping engine: one parsed message and a MappingSet in, one transaction Bundle out.

It knows no message type, segment or resource by name. Pass 1 walks the segments in order
and applies the segment mappings the message file lists that make resources; pass 2 applies
those that contribute to a resource made elsewhere; pass 3 resolves the links between
resources. Every resource is then PUT under its deterministic id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.hl7v2.parse import Message, Repetition, Segment
from adapters.hl7v2.types import (
    ERR_REQUIRED_FIELD_MISSING,
    ERR_SEGMENT_SEQUENCE,
    V2Error,
)
from adapters.mapping import paths
from adapters.mapping.compiled import (
    BUILD,
    DATATYPE,
    MAP,
    REFERENCE,
    RESOURCE,
    TRANSFORM,
    RulePlan,
    empty_component,
)
from adapters.mapping.datetimes import BadValue
from adapters.mapping.ids import make_id
from adapters.mapping.loader import MappingSet
from adapters.mapping.spec import (
    Attach,
    DatatypeMapping,
    Event,
    IdAlternative,
    IdPart,
    OnDuplicate,
    Rule,
    SegmentMapping,
)
from adapters.mapping.transforms import NAMES, Env
from adapters.mapping.values import Context, MessageIndex, is_empty, pick, text


@dataclass(eq=False)
class Made:
    """A resource being made, and where it came from."""

    type: str
    id: str
    resource: dict[str, Any]


class _Drop(Exception):
    """A rule marked ``required: drop`` found nothing: the resource is not made."""


def run(mappings: MappingSet, message: Message, event: Event) -> tuple[dict[str, Any], list[str]]:
    """Convert ``message`` with the mapping ``event`` names; returns (bundle, warnings)."""
    return _Run(mappings, message).execute(event)


class _Run:
    def __init__(self, mappings: MappingSet, message: Message) -> None:
        self.ms = mappings
        self.index = MessageIndex(message)
        self.env = Env(mappings.codes, mappings.zone, message.encoding.delimiters)
        self.made: dict[tuple[str, str], Made] = {}
        self.produced: dict[str, list[tuple[int, Made]]] = {}
        self.linkers: list[tuple[Made, SegmentMapping, Segment]] = []
        self.warnings: list[str] = []
        self.sender = message.segments[0].raw(4)
        #: References already made from a value by a context-free resource mapping.
        self.memo: dict[tuple[str, str, str | None], dict[str, Any] | None] = {}

    # --- the passes ---------------------------------------------------------------------------

    def execute(self, event: Event) -> tuple[dict[str, Any], list[str]]:
        message = self.ms.messages[event.mapping]
        for name in message.required:
            if name not in self.index.by_name:
                raise V2Error(
                    f"{event.message_type}^{event.trigger_event} needs a {name} segment",
                    code=ERR_SEGMENT_SEQUENCE,
                    segment=name,
                )
        known = self.ms.known[message.name]
        for name in sorted(set(self.index.by_name) - known):
            count = len(self.index.by_name[name])
            self.warnings.append(f"segment {name} ({count}x) is not mapped")
        plan = self.ms.plans[message.name]
        contributions = []
        for segment in self.index.segments:
            for mapping in plan.get(segment.name, ()):
                if mapping.contributes_to is None:
                    self._segment(mapping, segment)
                else:  # after every resource exists: a ROL may come before its PV1
                    contributions.append((mapping, segment))
        for mapping, segment in contributions:
            self._segment(mapping, segment)
        for made, mapping, segment in self.linkers:
            self._links(made, mapping, segment)
        return self._bundle(), self.warnings

    def _segment(self, mapping: SegmentMapping, segment: Segment) -> None:
        ctx = Context(self.index, segment, where=f"{segment.name}[{segment.sequence}]")
        check = mapping.check
        if check is not None and not check(ctx):
            return
        attach = mapping.contributes_to or mapping.merge_into
        host = self._find(attach, ctx) if attach is not None else None
        if mapping.contributes_to is not None and host is None:
            names = "/".join(mapping.contributes_to.to)
            self.warnings.append(f"{ctx.where}: no {names} resource to add it to; skipped")
            return
        if host is not None:
            ctx.element = host.resource
            try:
                self._rules(mapping.plans, ctx)
            except _Drop as exc:
                self.warnings.append(f"{ctx.where}: skipped: {exc}")
                return
            if mapping.resource is not None:
                self.produced.setdefault(mapping.name, []).append((segment.index, host))
                self.linkers.append((host, mapping, segment))
            return
        assert mapping.resource is not None
        resource: dict[str, Any] = {"resourceType": mapping.resource}
        ctx.element = resource
        try:
            self._rules(mapping.plans, ctx)
        except _Drop as exc:
            self.warnings.append(f"{ctx.where}: no {mapping.resource} made: {exc}")
            return
        rid = self._id(mapping.resource, mapping.id, ctx, "\x1f".join(segment.raw_fields))
        made = self._register(mapping.resource, rid, resource, mapping.on_duplicate, ctx)
        self.produced.setdefault(mapping.name, []).append((segment.index, made))
        self.linkers.append((made, mapping, segment))

    def _find(self, attach: Attach, ctx: Context) -> Made | None:
        found = pick(
            self._candidates(attach.to),
            lambda c: c[0],
            lambda c: self.index.segments[c[0]],
            ctx,
            attach.select,
            first=True,
        )
        return found[0][1] if found else None

    def _candidates(self, names: list[str]) -> list[tuple[int, Made]]:
        out = [c for name in names for c in self.produced.get(name, ())]
        return sorted(out, key=lambda c: c[0]) if len(names) > 1 else out

    def _links(self, made: Made, mapping: SegmentMapping, segment: Segment) -> None:
        ctx = Context(self.index, segment, element=made.resource, where=f"{segment.name}")
        for link in mapping.links:
            path = link.path
            if link.to_all:
                targets = [m for m in self.made.values() if m is not made]
            else:
                chosen = pick(
                    self._candidates(link.to),
                    lambda c: c[0],
                    lambda c: self.index.segments[c[0]],
                    ctx,
                    link.select,
                )
                targets = list({id(m): m for _, m in chosen if m is not made}.values())
            if not targets:
                if link.required:
                    raise V2Error(
                        f"{segment.name}[{segment.sequence}]: {made.type}.{link.target} needs "
                        f"a {' or '.join(link.to)} segment in the message",
                        code=ERR_SEGMENT_SEQUENCE,
                        segment=link.to[0][:3] if link.to else segment.name,
                    )
                continue
            if path[-1].kind in ("key", "index"):
                targets = targets[:1]
            for target in targets:
                reference: dict[str, Any] = {"reference": f"{target.type}/{target.id}"}
                value: Any = reference
                if link.reference_path is not None:
                    value = _clone(link.extra)
                    paths.assign(value, link.reference_path, reference)
                paths.assign(made.resource, path, value)

    def _bundle(self) -> dict[str, Any]:
        entries = []
        for made in self.made.values():
            # Nothing empty is ever assigned (paths.assign, the loader's checks), so the
            # resource needs no pruning below its top level.
            resource = {"resourceType": made.type, "id": made.id}
            resource.update(
                (k, v) for k, v in made.resource.items() if k != "resourceType" and paths.is_set(v)
            )
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{made.id}",
                    "resource": resource,
                    "request": {"method": "PUT", "url": f"{made.type}/{made.id}"},
                }
            )
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}

    # --- rules --------------------------------------------------------------------------------

    def _rules(self, plans: tuple[RulePlan, ...], ctx: Context) -> bool:
        """Apply rules in order; True when a rule with a v2 source set something."""
        content = False
        valued = ctx.segment.valued
        for plan in plans:
            number = plan.skip
            if number is not None and not valued(number):
                continue  # the common case: an empty field (cheap to skip)
            component = plan.skip_component
            if component is not None and empty_component(ctx.value, component):
                continue  # the same for an empty component of a datatype's value
            check = plan.check
            if check is not None and not check(ctx):
                continue
            if plan.is_constant:
                value = _clone(plan.constant) if plan.clone else plan.constant
                assert plan.assign is not None
                plan.assign(ctx.element, value)
            elif self._rule(plan, ctx):
                content = True
        return content

    def _rule(self, plan: RulePlan, ctx: Context) -> bool:
        reps = plan.source(ctx)
        if plan.first:
            reps = reps[:1]
        values = []
        if plan.kind == TRANSFORM:  # the common case, without a call per value
            function, env = plan.function, self.env
            sub = ctx.child(ctx.value, ctx.element, plan.table, plan.params) if plan.narrow else ctx
            for rep in reps:
                try:
                    value = function(rep, sub, env)
                except BadValue as exc:
                    self.warnings.append(f"{self._where(plan.rule, sub)}: {exc}; not mapped")
                    continue
                if value is not None:
                    values.append(value)
        else:
            for rep in reps:
                value = self._convert(plan, rep, ctx)
                if value is not None:
                    values.append(value)
        if not values:
            self._missing(plan.rule, ctx)
            return False
        assign = plan.assign
        if assign is None:
            return True
        if plan.join:
            joined = "\n".join(str(v.value if isinstance(v, paths.Typed) else v) for v in values)
            values = [joined]
        element = ctx.element
        for value in values:
            if plan.choice and not isinstance(value, paths.Typed):
                value = paths.Typed(self._type_of(plan.rule), value)
            assign(element, value)
        return True

    def _convert(self, plan: RulePlan, rep: Repetition, ctx: Context) -> Any:
        kind = plan.kind
        rule = plan.rule
        if kind == DATATYPE:
            assert rule.datatype is not None
            datatype = self.ms.datatypes[rule.datatype]
            requires = plan.requires or datatype.requires_paths
            return self._element(datatype.plans, rep, ctx, plan, requires)
        if kind == BUILD:
            return self._element(plan.sub, rep, ctx, plan, plan.requires)
        if kind == RESOURCE:
            assert rule.resource is not None
            return self._resource(self.ms.datatypes[rule.resource], rep, ctx, rule)
        if kind == REFERENCE:
            assert rule.reference is not None
            sub = ctx.child(rep, {})
            rid = self._id_from(rule.reference.type, rule.reference.id, sub)
            return {"reference": f"{rule.reference.type}/{rid}"} if rid else None
        assert kind == MAP, "transforms are applied by _rule"
        return self._map(rule, rep, ctx)

    def _element(
        self,
        plans: tuple[RulePlan, ...],
        rep: Repetition,
        ctx: Context,
        plan: RulePlan,
        requires: tuple[paths.Path, ...],
    ) -> dict[str, Any] | None:
        element: dict[str, Any] = {}
        rule = plan.rule
        sub = ctx.child(rep, element, rule.table, rule.params or None)
        if not self._rules(plans, sub):
            return None
        for key, value in plan.defaults:
            if not paths.is_set(element.get(key)):
                element[key] = _clone(value)
        if requires and not any(paths.is_set(paths.get(element, p)) for p in requires):
            return None
        return element

    def _resource(
        self, datatype: DatatypeMapping, rep: Repetition, ctx: Context, rule: Rule
    ) -> dict[str, Any] | None:
        """A resource made from one value; the same value again gives the same reference."""
        if not datatype.context_free or rule.params:
            return self._make_resource(datatype, rep, ctx, rule)
        key = (datatype.name, repr(rep), rule.table)
        if key not in self.memo:
            self.memo[key] = self._make_resource(datatype, rep, ctx, rule)
        found = self.memo[key]
        return dict(found) if found is not None else None

    def _make_resource(
        self, datatype: DatatypeMapping, rep: Repetition, ctx: Context, rule: Rule
    ) -> dict[str, Any] | None:
        resource: dict[str, Any] = {"resourceType": datatype.produces}
        sub = ctx.child(rep, resource, rule.table, rule.params or None)
        if not self._rules(datatype.plans, sub):
            return None
        requires = datatype.requires_paths
        if requires and not any(paths.is_set(paths.get(resource, p)) for p in requires):
            return None
        anchor = "^".join("&".join(c) for c in rep)
        rid = self._id(datatype.produces, datatype.id, sub, anchor)
        made = self._register(datatype.produces, rid, resource, datatype.on_duplicate, sub)
        return {"reference": f"{made.type}/{made.id}"}

    def _map(self, rule: Rule, rep: Repetition, ctx: Context) -> Any:
        map_id = rule.map or rule.map_coding
        assert map_id is not None
        code = text(rep).strip()
        entry = self.ms.codes.lookup(map_id, code)
        if entry is None:
            if self.ms.codes.is_unmapped(map_id, code):
                return None
            self.warnings.append(f"{self._where(rule, ctx)}: {code!r} is not in map {map_id}")
            return None
        if rule.map is not None:
            return entry.code
        coding = {
            "system": entry.system or self.ms.codes.target_system(map_id),
            "code": entry.code,
            "display": entry.display,
        }
        return {k: v for k, v in coding.items() if v}

    def _type_of(self, rule: Rule) -> str:
        if rule.datatype is not None:
            return self.ms.datatypes[rule.datatype].produces
        if rule.resource is not None or rule.reference is not None:
            return "Reference"
        if rule.map_coding is not None:
            return "Coding"
        if rule.map is not None:
            return "Code"
        return NAMES[rule.transform or "string"].fhir_type or "String"

    def _missing(self, rule: Rule, ctx: Context) -> None:
        if rule.required is None:
            return
        where = self._where(rule, ctx)
        if rule.required == "drop":
            raise _Drop(f"{where} ({rule.target}) is empty")
        raise V2Error(
            f"{where}: {rule.target} is required but empty",
            code=ERR_REQUIRED_FIELD_MISSING,
            segment=ctx.segment.name,
            sequence=ctx.segment.sequence,
            field_position=rule.field,
        )

    def _where(self, rule: Rule, ctx: Context) -> str:
        if rule.segment is not None:
            return f"{ctx.where} ({rule.segment}-{rule.field})"
        return f"{ctx.where}-{rule.field}" if rule.field else ctx.where

    # --- ids --------------------------------------------------------------------------------

    def _id(
        self, resource_type: str, alternatives: list[IdAlternative], ctx: Context, anchor: str
    ) -> str:
        rid = self._id_from(resource_type, alternatives, ctx)
        if rid is not None:
            return rid
        self.warnings.append(
            f"{ctx.where}: no identifier for the {resource_type}; "
            "its id is derived from its content"
        )
        return make_id(resource_type, ["content", self.sender, anchor])

    def _id_from(
        self, resource_type: str, alternatives: list[IdAlternative], ctx: Context
    ) -> str | None:
        for alternative in alternatives:
            values = []
            identifying = False
            for part in alternative.parts:
                value = self._id_part(part, ctx)
                identifying = identifying or (bool(value) and not part.qualifier)
                values.append(value)
            if identifying:
                return make_id(resource_type, values)
        return None

    def _id_part(self, part: IdPart, ctx: Context) -> str:
        check = part.check
        if check is not None and not check(ctx):
            return ""
        reps = [rep for rep in part.reader(ctx) if not is_empty(rep)]
        if not reps:
            return ""
        chosen = reps[0]
        if part.prefer is not None:
            for rep in reps:
                probe = part.prefer.reader(ctx.child(rep, {}))
                if probe and text(probe[0]).strip() in part.prefer.values:
                    chosen = rep
                    break
        comps = [
            (comp[0].strip() if len(comp) == 1 else "&".join([s.strip() for s in comp])).rstrip("&")
            for comp in chosen
        ]
        while comps and not comps[-1]:
            comps.pop()
        return "^".join(comps)

    def _register(
        self,
        resource_type: str,
        rid: str,
        resource: dict[str, Any],
        policy: OnDuplicate,
        ctx: Context,
    ) -> Made:
        key = (resource_type, rid)
        existing = self.made.get(key)
        if existing is None:
            made = Made(resource_type, rid, resource)
            self.made[key] = made
            return made
        if policy == "merge":
            _merge(existing.resource, resource)
            return existing
        self.warnings.append(
            f"{ctx.where}: another {resource_type} of this message has the same identifiers; "
            "this one's id also uses its position"
        )
        count = ctx.segment.sequence
        while (resource_type, rid) in self.made:
            rid = make_id(resource_type, [key[1], "occurrence", str(count)])
            count += 1
        made = Made(resource_type, rid, resource)
        self.made[(resource_type, rid)] = made
        return made


def _clone(value: Any) -> Any:
    """A copy of a constant from a mapping file (JSON-like: dicts, lists, scalars)."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Fold a second description of the same resource in: set values win, lists unite."""
    for key, value in other.items():
        current = into.get(key)
        if not paths.is_set(current):
            into[key] = value
        elif isinstance(current, dict) and isinstance(value, dict):
            _merge(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            current.extend(v for v in value if v not in current)

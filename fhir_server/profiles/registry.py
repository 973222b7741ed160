"""The program's conformance resources, loaded once from ``profiles/`` and compiled.

Start-up checks: every file parses, is a conformance resource with a canonical URL, no URL
is used twice, every profile compiles (its bindings name known ValueSets, its invariants
compile). A failure stops the server rather than letting unchecked writes through.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from fhir_server.fhir import jsonio
from fhir_server.fhir.outcomes import Issue
from fhir_server.profiles.rules import CompiledProfile, Context, compile_profile
from fhir_server.profiles.terminology import index_value_set

#: Read from the source tree, like ``mappings/`` (the server runs from a checkout).
PROFILES_DIR = Path(__file__).resolve().parents[2] / "profiles"
CONFORMANCE_TYPES = frozenset(
    {
        "StructureDefinition",
        "CodeSystem",
        "ValueSet",
        "OperationDefinition",
        "Measure",
        "SearchParameter",
    }
)


class ProfileError(RuntimeError):
    """The conformance resources in ``profiles/`` are unusable (raised at start-up)."""


def load_resources(directory: Path = PROFILES_DIR) -> list[dict[str, Any]]:
    """Every conformance resource in ``directory`` (not its examples), checked."""
    resources: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            resource = jsonio.loads(path.read_bytes())
        except Exception as exc:
            raise ProfileError(f"{path.name} does not parse: {exc}") from exc
        if not isinstance(resource, dict) or resource.get("resourceType") not in CONFORMANCE_TYPES:
            raise ProfileError(f"{path.name} is not a conformance resource")
        url = resource.get("url")
        if not isinstance(url, str) or not isinstance(resource.get("id"), str):
            raise ProfileError(f"{path.name} has no canonical url or id")
        if url in seen:
            raise ProfileError(f"{path.name} and {seen[url]} share the canonical URL {url}")
        seen[url] = path.name
        resources.append(resource)
    if not resources:
        raise ProfileError(f"no conformance resources found in {directory}")
    return resources


class ProfileRegistry:
    """Compiled profiles by canonical URL, and the resources to install."""

    def __init__(self, resources: Iterable[dict[str, Any]]) -> None:
        self.resources = list(resources)
        try:
            code_systems = {
                r["url"]: frozenset(c["code"] for c in r.get("concept", []))
                for r in self.resources
                if r["resourceType"] == "CodeSystem"
            }
            value_sets = {
                r["url"]: index_value_set(r, code_systems)
                for r in self.resources
                if r["resourceType"] == "ValueSet"
            }
            #: The program's ValueSets, for rules that test membership outside a profile.
            self.value_sets = value_sets
            #: code -> display of each program CodeSystem.
            self.displays = {
                r["url"]: {c["code"]: c.get("display", c["code"]) for c in r.get("concept", [])}
                for r in self.resources
                if r["resourceType"] == "CodeSystem"
            }
            definitions = [r for r in self.resources if r["resourceType"] == "StructureDefinition"]
            types_by_url = {sd["url"]: sd["type"] for sd in definitions}
            self.profiles = {
                sd["url"]: compile_profile(sd, types_by_url, value_sets) for sd in definitions
            }
        except (KeyError, ValueError, TypeError) as exc:
            raise ProfileError(f"profiles do not compile: {exc}") from exc

    def find(self, canonical: str) -> CompiledProfile | None:
        """The profile for ``url`` or ``url|version`` (None when not a program profile)."""
        url, _, version = canonical.partition("|")
        profile = self.profiles.get(url)
        if profile is None or (version and version != profile.version):
            return None
        return profile

    def validate(self, resource: dict[str, Any], canonicals: Iterable[str]) -> list[Issue]:
        """Issues of ``resource`` against the named program profiles (unknown ones skipped)."""
        issues: list[Issue] = []
        ctx = Context(resource, self.find)
        rtype = resource["resourceType"]
        for canonical in dict.fromkeys(canonicals):
            profile = self.find(canonical)
            if profile is None:
                continue
            if profile.type != rtype:
                message = f"Profile {canonical} is for {profile.type}, not {rtype}"
                issues.append(Issue("invalid", message, expression=(f"{rtype}.meta.profile",)))
                continue
            issues += profile.check(resource, rtype, ctx)
        return issues


@cache
def registry() -> ProfileRegistry:
    """The registry of ``profiles/``, built on first use (start-up installs it)."""
    return ProfileRegistry(load_resources())


def claimed_profile_issues(resource: dict[str, Any]) -> list[Issue]:
    """Issues against the program profiles ``resource`` claims in ``meta.profile``.

    Resources without ``meta`` cost one dict lookup; canonicals that are not program
    profiles are ignored (other systems' profiles are not an error here).
    """
    meta = resource.get("meta")
    if meta is None:
        return []
    claimed = meta.get("profile") if isinstance(meta, dict) else None
    if not claimed or not isinstance(claimed, list):
        return []
    return registry().validate(resource, [c for c in claimed if isinstance(c, str)])

"""One error type for the whole server, rendered as an OperationOutcome in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: OperationOutcome.issue.code values the server emits (IssueType, required binding).
IssueCode = str


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue."""

    code: IssueCode
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code}
        issue["diagnostics"] = self.diagnostics
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


@dataclass
class FhirError(Exception):
    """A failure that the client must hear about as an OperationOutcome with ``status``."""

    status: int
    code: IssueCode
    diagnostics: str
    expression: Sequence[str] = ()
    extra: Sequence[Issue] = field(default_factory=tuple)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics)

    @property
    def issues(self) -> list[Issue]:
        first = Issue(self.code, self.diagnostics, expression=tuple(self.expression))
        return [first, *self.extra]

    @classmethod
    def from_issues(cls, status: int, issues: Sequence[Issue]) -> FhirError:
        head, *rest = issues
        return cls(status, head.code, head.diagnostics, head.expression, tuple(rest))


def operation_outcome(issues: Sequence[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def information(message: str, code: IssueCode = "informational") -> dict[str, Any]:
    return operation_outcome([Issue(code, message, severity="information")])


def not_found(resource_type: str, resource_id: str) -> FhirError:
    return FhirError(404, "not-found", f"Resource {resource_type}/{resource_id} is not known")


def gone(resource_type: str, resource_id: str, version: int) -> FhirError:
    return FhirError(
        410, "deleted", f"Resource {resource_type}/{resource_id} was deleted (version {version})"
    )

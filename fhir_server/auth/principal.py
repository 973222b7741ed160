"""Who is calling: put on ``request.state.principal`` by the auth middleware."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Principal:
    """An authenticated client, as its access token describes it (None when auth is off)."""

    client_id: str
    kind: str
    scopes: tuple[str, ...]
    attributes: dict[str, str] = field(default_factory=dict)

"""How what a row asks for combines with what is stored: the adapter owns some elements of a
resource, others belong to whoever else writes it. The shared Patient follows the one merge
policy of both adapters, ``adapters.identity.merge_from_insurer``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Content = dict[str, Any]
Merge = Callable[[Content | None, Content], Content]


def replace(_current: Content | None, ours: Content) -> Content:
    return ours


def fill(current: Content | None, ours: Content) -> Content:
    """Someone else's organisation or practitioner: add what it lacks, change nothing."""
    if current is None:
        return ours
    return {**ours, **current}

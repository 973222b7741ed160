"""Distances between a patient's postal code region and a team's location.

German postal codes are ranked by their two-digit region (Leitregion): its main city's
position (``data/plz-regions.csv``) stands for the patient. Good enough to rank 30 teams;
no street-level geocoding.
"""

from __future__ import annotations

import csv
import math
from functools import cache
from importlib import resources

EARTH_RADIUS_KM = 6371.0088

Position = tuple[float, float]


@cache
def regions() -> dict[str, Position]:
    """Two-digit region -> (latitude, longitude) of its main city."""
    text = resources.files("fhir_server.pathway").joinpath("data/plz-regions.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    return {r["region"]: (float(r["latitude"]), float(r["longitude"])) for r in rows}


def position_of_postal_code(postal_code: str | None) -> Position | None:
    """The region centroid of a German postal code; None when it is not one."""
    if not postal_code:
        return None
    digits = postal_code.strip().removeprefix("D-")
    if len(digits) != 5 or not digits.isdigit():
        return None
    return regions().get(digits[:2])


def distance_km(a: Position, b: Position) -> float:
    """Great-circle (haversine) distance."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))

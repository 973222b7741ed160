"""HL7 v2 DT/DTM/TS/TM values as FHIR date, dateTime, instant and time.

FHIR requires a time zone whenever a time is given; v2 often omits it. Such local times are
read in the profile's zone (Europe/Berlin by default), daylight saving included.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

_DTM = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?\s*([+-]\d{4}|Z)?")
_TM = re.compile(r"(\d{2})(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?")


class BadValue(ValueError):
    """A value that does not fit the datatype; the caller records it as a warning."""


_DEFAULTS = (0, 1, 1, 0, 0, 0)


def _full(parts: list[int]) -> tuple[int, int, int, int, int, int]:
    """Year .. second with the missing tail defaulted (month/day 1, time 0)."""
    year, month, day, hour, minute, second = (*parts, *_DEFAULTS[len(parts) :])
    return year, month, day, hour, minute, second


class Moment:
    """A parsed DTM: its precision (4 year ... 14 seconds) and its fields."""

    __slots__ = ("fraction", "offset", "parts", "precision")

    def __init__(self, parts: list[int], fraction: str, offset: str | None) -> None:
        self.parts = parts
        self.precision = len(parts)
        self.fraction = fraction
        self.offset = offset

    def date(self) -> str:
        year, month, day = _full(self.parts)[:3]
        if self.precision == 1:
            return f"{year:04d}"
        if self.precision == 2:
            return f"{year:04d}-{month:02d}"
        return f"{year:04d}-{month:02d}-{day:02d}"

    def date_time(self, zone: ZoneInfo, pad: bool = False) -> str:
        """FHIR dateTime; ``pad`` gives a date-only value midnight (for instants)."""
        if self.precision <= 3 and not pad:
            return self.date()
        year, month, day, hour, minute, second = _full(self.parts)
        offset = self.offset or _offset(datetime(year, month, day, hour, minute, second), zone)
        return (
            f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
            f"{self.fraction}{offset}"
        )

    def as_datetime(self, zone: ZoneInfo) -> datetime:
        year, month, day, hour, minute, second = _full(self.parts)
        local = datetime(year, month, day, hour, minute, second)
        if self.offset:
            sign = -1 if self.offset.startswith("-") else 1
            hours, minutes = int(self.offset[1:3]), int(self.offset[4:6])
            return local.replace(tzinfo=timezone(sign * timedelta(hours=hours, minutes=minutes)))
        return local.replace(tzinfo=zone)


def _offset(local: datetime, zone: ZoneInfo) -> str:
    delta = zone.utcoffset(local) or timedelta(0)
    return format_offset(delta)


def format_offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_dtm(text: str) -> Moment:
    """Parse a v2 DTM/TS/DT value; BadValue when it is not one."""
    value = text.strip()
    match = _DTM.fullmatch(value)
    if not match:
        raise BadValue(f"{value!r} is not an HL7 date/time")
    groups = match.groups()
    parts = [int(g) for g in groups[:6] if g is not None]
    if len(parts) < 6 and any(g is not None for g in groups[len(parts) : 6]):
        raise BadValue(f"{value!r} is not an HL7 date/time")
    year, month, day, hour, minute, second = _full(parts)
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise BadValue(f"{value!r} is not a valid date/time: {exc}") from None
    if year < 1800:
        raise BadValue(f"{value!r} is not a plausible date")
    fraction = groups[6] or ""
    offset = groups[7]
    if offset == "Z":
        offset = "+00:00"
    elif offset:
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:
            raise BadValue(f"{value!r} has an impossible UTC offset")
        offset = f"{offset[0]}{offset[1:3]}:{offset[3:5]}"
    return Moment(parts, fraction, offset)


def parse_tm(text: str) -> str:
    """A v2 TM as a FHIR time (hh:mm:ss); BadValue otherwise."""
    value = text.strip()
    match = _TM.fullmatch(value)
    if not match:
        raise BadValue(f"{value!r} is not an HL7 time")
    hour, minute, second = (int(g) if g else 0 for g in match.groups()[:3])
    if hour > 23 or minute > 59 or second > 59:
        raise BadValue(f"{value!r} is not a valid time")
    return f"{hour:02d}:{minute:02d}:{second:02d}"

"""Server time: UTC, millisecond precision, so that what is stored is what is shown."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond - t.microsecond % 1000)


def instant(value: datetime) -> str:
    """FHIR ``instant`` text, e.g. ``2026-11-25T08:00:00.123+00:00``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_instant(text: str, name: str) -> datetime:
    """Parse a date, dateTime or instant query value; dates without zone count as UTC."""
    from fhir_server.fhir.outcomes import FhirError

    try:
        value = datetime.fromisoformat(text.replace(" ", "+"))
    except ValueError as exc:
        raise FhirError(
            400, "value", f"Invalid {name} value '{text[:60]}': not a date/time"
        ) from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)

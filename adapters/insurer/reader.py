"""Bytes of an export into records: encoding, CSV delimiter, JSON array or JSON Lines.

German insurers write UTF-8 (with or without BOM) as well as Windows-1252 or ISO-8859-15, and
``;`` as often as ``,``. Problems of the whole file raise :class:`SourceError`; a malformed
record becomes a record with a ``problem`` so the rest of the file is still read.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from adapters.insurer.layout import REQUIRED, Layout

Format = Literal["csv", "json", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "json", "jsonl")

#: Bytes that are printable in Windows-1252 but C1 control characters in ISO-8859-x.
_C1 = frozenset(range(0x80, 0xA0))
_DELIMITERS = (";", ",", "\t")


class SourceError(Exception):
    """The file as a whole cannot be read with this layout (nothing was imported)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One referral as the file has it: source column -> text."""

    row: int
    line: int | None
    values: dict[str, str]
    #: Why the record could not be read (wrong field count, invalid JSON line, …).
    problem: str | None = None
    #: Columns whose JSON value was not text, with the reason.
    bad_values: dict[str, str] = field(default_factory=dict)


@dataclass
class Source:
    format: Format
    encoding: str
    delimiter: str | None
    records: list[Record]
    warnings: list[str] = field(default_factory=list)


def read(
    data: bytes, layout: Layout, file_format: str | None = None, encoding: str | None = None
) -> Source:
    """Decode and split ``data``; ``file_format``/``encoding`` override detection."""
    text, used = decode(data, layout.source.encodings, encoding)
    kind = _format(text, file_format)
    if kind == "csv":
        return _read_csv(text, used, layout)
    records = _read_json(text) if kind == "json" else _read_jsonl(text)
    source = Source(kind, used, None, records)
    _check_keys(source, layout, {k for r in records for k in r.values})
    return source


def decode(data: bytes, candidates: Sequence[str], forced: str | None = None) -> tuple[str, str]:
    """Text and the encoding used: BOM, else strict UTF-8, else the layout's single-byte
    encodings, preferring Windows-1252 when C1 bytes show it (they are controls elsewhere)."""
    if forced:
        try:
            return _normal(data.decode(forced)), forced.lower()
        except (LookupError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot decode the file as {forced}: {exc}") from exc
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return _normal(data.decode(name)), name
            except UnicodeDecodeError as exc:
                raise SourceError(f"the file starts with a {name} BOM but is not {name}") from exc
    try:
        return _normal(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    single = [c for c in candidates if c != "utf-8"]
    if any(b in _C1 for b in data) and "cp1252" in single:
        single = ["cp1252", *(c for c in single if c != "cp1252")]
    for name in single:
        try:
            return _normal(data.decode(name)), name
        except UnicodeDecodeError:
            continue
    raise SourceError(
        f"the file is not UTF-8 ({utf8_error.reason} at byte {utf8_error.start}) "
        f"nor any of {', '.join(single) or 'the layout encodings'}"
    )


def _normal(text: str) -> str:
    """NFC, so that umlauts typed on different systems compare equal."""
    return unicodedata.normalize("NFC", text)


def _format(text: str, requested: str | None) -> Format:
    if requested:
        for kind in FORMATS:
            if requested == kind:
                return kind
        raise SourceError(f"unknown format '{requested}' (use csv, json or jsonl)")
    start = text.lstrip()[:1]
    if start == "[":
        return "json"
    if start == "{":
        return "jsonl"
    return "csv"


def _read_csv(text: str, encoding: str, layout: Layout) -> Source:
    header_line = next((line for line in text.splitlines() if line.strip()), None)
    if header_line is None:
        raise SourceError("the file is empty")
    configured = layout.source.delimiter
    delimiter = _sniff(header_line, layout) if configured == "auto" else configured
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    records: list[Record] = []
    last_line = 0
    for fields in reader:
        first_line, last_line = last_line + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if header is None:
            header = [f.strip() for f in fields]
            continue
        row = len(records) + 1
        if len(fields) != len(header):
            lines = f"line {first_line}" + (f"-{last_line}" if last_line > first_line else "")
            problem = f"{len(fields)} fields where the header has {len(header)} ({lines})"
            values = dict(zip(header, fields, strict=False))
            records.append(Record(row, first_line, values, problem))
            continue
        records.append(Record(row, first_line, dict(zip(header, fields, strict=True))))
    assert header is not None
    source = Source("csv", encoding, delimiter, records)
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise SourceError(f"the header repeats the columns {duplicates}")
    _check_keys(source, layout, set(header))
    return source


def _sniff(header_line: str, layout: Layout) -> str:
    """The delimiter that splits the header into the most known columns."""

    def score(delimiter: str) -> tuple[int, int]:
        names = next(csv.reader([header_line], delimiter=delimiter), [])
        return sum(n.strip() in layout.columns for n in names), header_line.count(delimiter)

    return max(_DELIMITERS, key=score)


def _read_json(text: str) -> list[Record]:
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SourceError(f"not valid JSON: {exc}") from exc
    if not isinstance(items, list):
        raise SourceError("a JSON export must be an array of referral objects")
    return [_json_record(i + 1, None, item) for i, item in enumerate(items)]


def _read_jsonl(text: str) -> list[Record]:
    records: list[Record] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = len(records) + 1
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            records.append(Record(row, number, {}, f"line {number} is not valid JSON: {exc}"))
            continue
        records.append(_json_record(row, number, item))
    return records


def _json_record(row: int, line: int | None, item: Any) -> Record:
    if not isinstance(item, dict):
        return Record(row, line, {}, f"expected a JSON object, found {type(item).__name__}")
    values: dict[str, str] = {}
    bad: dict[str, str] = {}
    for key, value in item.items():
        text = _json_text(value)
        if text is None:
            bad[key] = f"expected text, found a JSON {type(value).__name__}"
            values[key] = orjson.dumps(value).decode()
        else:
            values[key] = text
    return Record(row, line, values, None, bad)


def _json_text(value: Any) -> str | None:
    """Scalars as the CSV would have them; a list of scalars (diagnoses) joined with ';'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ";".join(str(v) for v in value)
    return None


def _check_keys(source: Source, layout: Layout, present: Iterable[str]) -> None:
    """Refuse a file that is not of this layout; warn about columns absent or unread."""
    names = set(present)
    known = [c for c in layout.columns if c in names]
    if source.format == "csv":
        missing = sorted(c for c, t in layout.columns.items() if t in REQUIRED and c not in names)
        if missing:
            raise SourceError(
                f"the header lacks the columns {missing} of layout '{layout.layout}' "
                f"(found {sorted(names)})"
            )
        absent = sorted(c for c in layout.columns if c not in names)
        if absent:
            source.warnings.append(f"optional columns absent, read as empty: {absent}")
    elif source.records and names and not known:
        raise SourceError(
            f"no key of layout '{layout.layout}' occurs in the file (found {sorted(names)})"
        )
    unknown = sorted(n for n in names if n not in layout.columns)
    if unknown:
        source.warnings.append(f"columns not in layout '{layout.layout}' were ignored: {unknown}")

"""``ivz ingest insurer FILE --layout tk`` (the adapter's typer app, mounted as ``ingest``)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from adapters.insurer.cli import app
from tests.adapters.insurer.helpers import Fresh, sample


def _run(tmp_path: Path, database_url: str, name: str, data: bytes) -> tuple[int, str, Path]:
    export = tmp_path / name
    export.write_bytes(data)
    result = CliRunner().invoke(
        app, ["insurer", str(export), "--layout", "tk", "--database-url", database_url]
    )
    return result.exit_code, result.output, export


def test_import_prints_the_summary_and_writes_both_reports(
    tmp_path: Path, database_url: str
) -> None:
    code, output, export = _run(tmp_path, database_url, "tk.csv", Fresh()(sample("tk.csv")))
    assert code == 0, output
    assert "imported" in output and "rejected" in output
    report = json.loads(export.with_name("tk.csv.report.json").read_text())
    assert (report["rows"], report["imported"]) == (4, 4)
    assert export.with_name("tk.csv.errors.csv").read_text().startswith("row;line;")


def test_rejected_rows_give_exit_code_1_and_the_error_csv(
    tmp_path: Path, database_url: str
) -> None:
    data = Fresh(kvnrs=False)(sample("tk_errors.csv"))
    code, _, export = _run(tmp_path, database_url, "bad.csv", data)
    assert code == 1
    lines = export.with_name("bad.csv.errors.csv").read_text().splitlines()
    assert len(lines) == 1 + 18


def test_refused_file_gives_exit_code_2(tmp_path: Path, database_url: str) -> None:
    code, output, _ = _run(tmp_path, database_url, "aok.csv", sample("aok.csv"))
    assert code == 2
    assert "lacks the columns" in output


def test_json_lines_file_is_recognised_by_its_extension(tmp_path: Path, database_url: str) -> None:
    code, output, _ = _run(tmp_path, database_url, "tk.ndjson", Fresh()(sample("tk.jsonl")))
    assert code == 0, output
